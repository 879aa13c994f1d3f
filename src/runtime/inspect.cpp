// `kiln info`: a model's interface, operators, size and work, without generating code.
#include "onnx/importer.h"
#include "runtime/compiler.h"

namespace kiln {

namespace {

// Multiply-adds count as two FLOPs; everything else as one per output element.
double node_flops(const graph::Graph& g, const graph::Node& n) {
  auto shape = [&](const std::string& v) -> const Shape& { return g.value(v).type.shape; };
  if (n.outputs.empty() || n.outputs[0].empty()) return 0;
  double out = double(shape_numel(shape(n.outputs[0])));
  if (n.op_type == "Conv" && n.inputs.size() > 1) {
    const Shape& w = shape(n.inputs[1]);
    return 2 * out * double(shape_numel(w) / std::max<int64_t>(1, w[0]));
  }
  if (n.op_type == "ConvTranspose" && n.inputs.size() > 1) {
    const Shape& w = shape(n.inputs[1]);
    return 2 * double(shape_numel(shape(n.inputs[0]))) * double(shape_numel(w) / std::max<int64_t>(1, w[0]));
  }
  if ((n.op_type == "MatMul" || n.op_type == "Gemm") && n.inputs.size() > 1) {
    const Shape& a = shape(n.inputs[0]);
    int64_t k = a.empty() ? 1 : (n.op_type == "Gemm" && n.attrs.count("transA") && n.attrs.at("transA").i ? a[0] : a.back());
    return 2 * out * double(k);
  }
  return out;
}

}  // namespace

ModelSummary summarize_model(const std::string& path, const std::map<std::string, Shape>& shapes) {
  onnx_import::ImportOptions io;
  io.shapes = shapes;
  graph::Graph raw = onnx_import::import_file(path, io);
  ModelSummary s;
  s.opset = raw.nodes.empty() ? 0 : raw.nodes[0].opset;
  for (auto& n : raw.inputs) s.inputs.push_back({n, raw.value(n).type.dtype, raw.value(n).type.shape});
  for (auto& n : raw.nodes) s.op_counts[n.op_type]++;
  s.num_nodes = int64_t(raw.nodes.size());
  for (auto& kv : raw.values)
    if (kv.second.constant) s.parameters += kv.second.constant->numel();
  s.unsupported = find_unsupported(raw);
  for (auto& o : raw.outputs) s.outputs.push_back({o, DType::F32, {}});
  if (!s.unsupported.empty()) {
    s.type_error = "the model has unsupported operators";
    return s;
  }
  try {
    CompileOptions opts;
    opts.shapes = shapes;
    opts.log = [](const std::string&) {};
    graph::Graph g = analyze(path, opts);
    for (auto& n : g.nodes) s.flops += node_flops(g, n);
    s.outputs.clear();
    for (auto& o : g.outputs) s.outputs.push_back({o, g.value(o).type.dtype, g.value(o).type.shape});
    s.typed = true;
  } catch (const Error& e) {
    s.type_error = e.what();
  }
  return s;
}

}  // namespace kiln
