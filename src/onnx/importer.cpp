#include "onnx/importer.h"

#include <fcntl.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <onnx/checker.h>
#include <unistd.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "kiln/error.h"
#include "onnx/tensor_proto.h"

namespace kiln::onnx_import {

namespace {

// Newest default-domain opset the linked ONNX library (1.12) has schemas for.
constexpr int kCheckerMaxOpset = 17;

struct Importer {
  std::string source, dir;
  const ImportOptions& opts;
  std::map<std::string, int> opsets;  // domain -> version

  std::string where(const std::string& s) const { return source + ": " + s; }

  graph::Attribute attribute(const onnx::AttributeProto& a, const std::string& node_label) {
    graph::Attribute r;
    using K = graph::Attribute::Kind;
    switch (a.type()) {
      case onnx::AttributeProto::INT: r.kind = K::Int; r.i = a.i(); break;
      case onnx::AttributeProto::FLOAT: r.kind = K::Float; r.f = a.f(); break;
      case onnx::AttributeProto::STRING: r.kind = K::String; r.s = a.s(); break;
      case onnx::AttributeProto::INTS: r.kind = K::Ints; r.ints.assign(a.ints().begin(), a.ints().end()); break;
      case onnx::AttributeProto::FLOATS: r.kind = K::Floats; r.floats.assign(a.floats().begin(), a.floats().end()); break;
      case onnx::AttributeProto::STRINGS: r.kind = K::Strings; r.strings.assign(a.strings().begin(), a.strings().end()); break;
      case onnx::AttributeProto::TENSOR:
        r.kind = K::Tensor;
        r.tensor = std::make_shared<HostTensor>(
            from_proto(a.t(), dir, where(node_label + " attribute '" + a.name() + "'"), opts.max_tensor_bytes));
        break;
      case onnx::AttributeProto::GRAPH:
        r.kind = K::Graph;
        r.graph = std::make_shared<graph::Graph>(import_graph(a.g(), /*is_main=*/false));
        break;
      default:
        // Sparse tensors, type protos and lists of graphs: kept as absent; ops needing them report it.
        r.kind = K::Strings;
        break;
    }
    return r;
  }

  graph::TensorType value_type(const onnx::ValueInfoProto& vi, bool is_main) {
    if (!vi.type().has_tensor_type())
      fail(where("input '" + vi.name() + "' is not a tensor (sequences, maps and optionals are not supported)"));
    const auto& tt = vi.type().tensor_type();
    graph::TensorType t;
    if (!dtype_from_onnx(tt.elem_type(), &t.dtype))
      fail(where("input '" + vi.name() + "' has element type " + std::to_string(tt.elem_type()) +
                 ", which kiln does not support"));
    auto it = opts.shapes.find(vi.name());
    if (is_main && it != opts.shapes.end()) {
      t.shape = it->second;
    } else {
      for (auto& d : tt.shape().dim()) t.shape.push_back(d.has_dim_value() ? d.dim_value() : 1);
    }
    int64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail(where("input '" + vi.name() + "' has negative dimension " + std::to_string(d)));
      if (d > 0 && n > opts.max_tensor_bytes / d) fail(where("input '" + vi.name() + "' has a shape that is too large: " + shape_str(t.shape)));
      n *= d;
    }
    if (n * dtype_bytes(t.dtype) > opts.max_tensor_bytes)
      fail(where("input '" + vi.name() + "' has a shape that is too large: " + shape_str(t.shape)));
    return t;
  }

  // A Constant node becomes a constant value.
  bool constant_node(const onnx::NodeProto& n, graph::Graph& g, const std::string& label) {
    if (n.op_type() != "Constant" || !(n.domain().empty() || n.domain() == "ai.onnx")) return false;
    if (n.output_size() != 1 || n.attribute_size() != 1) fail(where(label + ": needs one output and one attribute"));
    const auto& a = n.attribute(0);
    HostTensor t;
    if (a.name() == "value") {
      t = from_proto(a.t(), dir, where(label), opts.max_tensor_bytes);
    } else if (a.name() == "value_float") {
      t = HostTensor(DType::F32, {});
      t.as<float>()[0] = a.f();
    } else if (a.name() == "value_int") {
      t = HostTensor(DType::I64, {});
      t.as<int64_t>()[0] = a.i();
    } else if (a.name() == "value_floats") {
      t = HostTensor(DType::F32, {int64_t(a.floats_size())});
      for (int i = 0; i < a.floats_size(); ++i) t.as<float>()[i] = a.floats(i);
    } else if (a.name() == "value_ints") {
      t = HostTensor(DType::I64, {int64_t(a.ints_size())});
      for (int i = 0; i < a.ints_size(); ++i) t.as<int64_t>()[i] = a.ints(i);
    } else {
      fail(where(label + ": attribute '" + a.name() + "' is not supported"));
    }
    graph::Value v;
    v.type = {t.dtype, t.shape};
    v.typed = true;
    v.constant = std::make_shared<HostTensor>(std::move(t));
    g.values[n.output(0)] = v;
    return true;
  }

  graph::Graph import_graph(const onnx::GraphProto& gp, bool is_main) {
    graph::Graph g;
    g.source = source;
    std::set<std::string> init_names;
    for (auto& init : gp.initializer()) {
      graph::Value v;
      auto t = from_proto(init, dir, where("initializer '" + init.name() + "'"), opts.max_tensor_bytes);
      v.type = {t.dtype, t.shape};
      v.typed = true;
      v.constant = std::make_shared<HostTensor>(std::move(t));
      g.values[init.name()] = v;
      init_names.insert(init.name());
    }
    for (auto& in : gp.input()) {
      if (init_names.count(in.name())) continue;
      graph::Value v;
      v.type = value_type(in, is_main);
      v.typed = true;
      g.values[in.name()] = v;
      g.inputs.push_back(in.name());
    }
    if (is_main)
      for (auto& kv : opts.shapes)
        if (std::find(g.inputs.begin(), g.inputs.end(), kv.first) == g.inputs.end())
          fail(where("--shape names '" + kv.first + "', which is not a graph input"));

    std::vector<graph::Node> nodes;
    int index = 0;
    for (auto& np : gp.node()) {
      std::string name = np.name().empty() ? np.op_type() + "_" + std::to_string(index) : np.name();
      ++index;
      std::string label = "node '" + name + "' (" + np.op_type() + ")";
      if (constant_node(np, g, label)) continue;
      graph::Node n;
      n.name = name;
      n.op_type = np.op_type();
      n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
      auto it = opsets.find(n.domain);
      n.opset = it == opsets.end() ? 1 : it->second;
      n.inputs.assign(np.input().begin(), np.input().end());
      n.outputs.assign(np.output().begin(), np.output().end());
      for (auto& a : np.attribute()) n.attrs[a.name()] = attribute(a, label);
      for (auto& o : n.outputs)
        if (!o.empty() && !g.values.count(o)) g.values[o] = graph::Value{};
      nodes.push_back(std::move(n));
    }
    g.nodes = topo_sort(std::move(nodes), g, is_main);
    for (auto& o : gp.output()) g.outputs.push_back(o.name());
    if (is_main)
      for (auto& o : g.outputs)
        if (!g.values.count(o)) fail(where("graph output '" + o + "' is not produced by any node"));
    return g;
  }

  // Orders nodes so every input is produced first; refuses cycles. Names not produced inside
  // a subgraph are taken to come from the enclosing scope.
  std::vector<graph::Node> topo_sort(std::vector<graph::Node> nodes, const graph::Graph& g, bool is_main) {
    std::map<std::string, size_t> producer;
    for (size_t i = 0; i < nodes.size(); ++i)
      for (auto& o : nodes[i].outputs)
        if (!o.empty()) {
          if (producer.count(o) || (g.values.count(o) && g.values.at(o).constant))
            fail(where(nodes[i].label() + ": output '" + o + "' is produced more than once"));
          producer[o] = i;
        }
    std::vector<int> state(nodes.size(), 0);  // 0 new, 1 on stack, 2 done
    std::vector<graph::Node> order;
    std::function<void(size_t)> visit = [&](size_t i) {
      if (state[i] == 2) return;
      if (state[i] == 1) fail(where(nodes[i].label() + ": the graph has a cycle through this node"));
      state[i] = 1;
      for (auto& in : nodes[i].inputs) {
        if (in.empty()) continue;
        auto it = producer.find(in);
        if (it != producer.end()) visit(it->second);
        else if (is_main && !g.values.count(in))
          fail(where(nodes[i].label() + ": input '" + in + "' is not produced by any node"));
      }
      state[i] = 2;
      order.push_back(nodes[i]);
    };
    // Iterative deepening is unnecessary: visit in file order so sorted files stay as they are.
    for (size_t i = 0; i < nodes.size(); ++i) visit(i);
    return order;
  }
};

}  // namespace

namespace {

graph::Graph import_model(onnx::ModelProto& model, const std::string& source, const std::string& dir,
                          const ImportOptions& opts) {
  if (!model.has_graph()) fail(source, ": the model has no graph");

  Importer imp{source, dir, opts, {}};
  for (auto& o : model.opset_import())
    imp.opsets[o.domain() == "ai.onnx" ? "" : o.domain()] = int(o.version());
  if (!imp.opsets.count("")) imp.opsets[""] = 1;
  // Opsets before 7 are accepted too: converters handle the differences they know (legacy
  // broadcasting, consumed_inputs); anything else they refuse with a clear error.
  int opset = imp.opsets[""];

  // ONNX's own checks. The linked library knows opsets up to 17; a newer model is checked
  // by kiln's converters alone.
  if (opset <= kCheckerMaxOpset) {
    try {
      onnx::checker::CheckerContext cctx;
      cctx.set_ir_version(int(model.ir_version()));
      std::unordered_map<std::string, int> ops(imp.opsets.begin(), imp.opsets.end());
      cctx.set_opset_imports(ops);
      cctx.set_model_dir(dir);
      onnx::checker::LexicalScopeContext lex;
      onnx::checker::check_graph(model.graph(), cctx, lex);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      // Custom domains are judged by kiln's converters; cycles and inputs nobody produces by
      // kiln's own topological sort, whose message names the node (the checker's does not).
      bool kiln_judges = msg.find("No Op registered") != std::string::npos ||
                         msg.find("must be topologically sorted") != std::string::npos;
      if (!kiln_judges) fail(source, ": the ONNX checker rejects the model: ", msg.substr(0, msg.find('\n')));
    }
  }
  try {
    return imp.import_graph(model.graph(), true);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(source, ": cannot import: ", e.what());
  }
}

}  // namespace

graph::Graph import_bytes(const std::string& bytes, const std::string& source, const std::string& dir,
                          const ImportOptions& opts) {
  onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromString(bytes))
    fail(source, ": not a valid ONNX model (protobuf parsing failed)");
  return import_model(model, source, dir, opts);
}

graph::Graph import_file(const std::string& path, const ImportOptions& opts) {
  // Parsed straight from the file: a 440 MB model is not first copied into a string.
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, ": cannot open the file");
  onnx::ModelProto model;
  bool parsed;
  {
    google::protobuf::io::FileInputStream in(fd);
    parsed = model.ParseFromZeroCopyStream(&in) && in.GetErrno() == 0 && model.ByteSizeLong() > 0;
  }
  ::close(fd);
  if (!parsed) fail(path, ": not a valid ONNX model (protobuf parsing failed)");
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return import_model(model, path, dir, opts);
}

HostTensor load_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  onnx::TensorProto p;
  if (!p.ParseFromString(ss.str())) fail(path, ": not an ONNX TensorProto file");
  return from_proto(p, "", path, int64_t(16) << 30);
}

void save_tensor_file(const std::string& path, const HostTensor& t, const std::string& name) {
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(path, ": cannot write the file");
  to_proto(t, name).SerializeToOstream(&out);
}

}  // namespace kiln::onnx_import
