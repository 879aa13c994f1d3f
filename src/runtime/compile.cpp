// The compiler pipeline, in order: import -> canonicalize -> dead-code elimination ->
// type/fold/lower sweep (every node becomes a loop-nest kernel or a folded constant) ->
// LLVM code generation -> buffer plan. Each step is timed and can be dumped (--dump-ir).
#include <chrono>
#include <deque>
#include <iostream>
#include <set>

#include "graph/gelu.h"
#include "graph/passes.h"
#include "graph/precision.h"
#include "graph/qdq.h"
#include "onnx/importer.h"
#include "ops/blocked_layout.h"
#include "ops/registry.h"
#include "runtime/compiler.h"
#include "runtime/memory_plan.h"
#include "runtime/model_impl.h"
#include "runtime/sequences.h"
#include "runtime/thread_pool.h"
#include "tir/cost.h"
#include "tir/equivalence.h"
#include "tir/schedule.h"
#include "tir/partition.h"
#include "tir/schedule_steps.h"
#include "codegen/target.h"
#include "tir/lower.h"

namespace kiln {

namespace {

using Clock = std::chrono::steady_clock;

// Loop nests with fewer innermost iterations than this stay serial (thread wake-up costs more).
constexpr int64_t kMinParallelWork = 1 << 15;

// The machine an emitted file is for (CompileOptions::emit_target).
const codegen::Target& emit_target(const CompileOptions& o) {
  if (o.emit_target.empty() || o.emit_target == "host") return codegen::Target::host();
  if (o.emit_target == "sapphirerapids") return codegen::Target::sapphire_rapids();
  fail("emit target '", o.emit_target, "' is not one of host, sapphirerapids");
}

// Whether bf16 products (in bf16 mode) and 8-bit products (quantized models) run on AMX
// tiles: really, or emulated by plain loops here for an emitted file or for testing.
bool bf16_tiles(const CompileOptions& o) {
  return o.precision == Precision::BF16 &&
         (codegen::Target::host().has_amx_bf16 || o.emulate_amx || emit_target(o).has_amx_bf16);
}
// 8-bit products are tile products wherever they have fast code: AMX, or AVX2's vpmaddwd
// (codegen/llvm_emit.cpp lowers them for each).
bool int8_tiles(const CompileOptions& o) {
  const codegen::Target& host = codegen::Target::host();
  return host.has_amx_int8 || host.vector_bits >= 256 || o.emulate_amx || emit_target(o).has_amx_int8;
}

tir::VectorTarget vector_target(const CompileOptions& o) {
  const codegen::Target& t = codegen::Target::host();
  return {t.vector_bits / 8, t.has_avx512 ? 32 : 16, bf16_tiles(o), int8_tiles(o), t.l2_bytes, o.threads};
}

codegen::CodegenOptions codegen_options(int opt_level) {
  codegen::CodegenOptions co;
  co.opt_level = opt_level;
  co.runtime_symbols = {{"kiln_parallel_for", reinterpret_cast<void*>(&kiln_parallel_for)}};
  return co;
}
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string sanitize(const std::string& s) {
  std::string r;
  for (char c : s) r += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return r;
}

// Ops the sweep handles itself instead of through the registry.
bool is_builtin(const std::string& op) {
  return op == "Shape" || op == "Size" || op == "If" || SequenceLowering::is_sequence_op(op);
}

struct Kernel {
  tir::PrimFunc func;              // compiled kernel, or
  std::function<void(void**)> host;  // host operator
  bool dead = false;                 // fused into a later kernel

  std::string node_label;
  std::string fused;  // the nodes fused into this kernel before node_label's, "A + B + " when any
  std::vector<std::string> args;  // value names, parameter order
  std::string schedule;           // the schedule steps applied after lowering, printed with the IR
};

}  // namespace

std::vector<std::string> find_unsupported(const graph::Graph& g) {
  std::map<std::string, std::vector<std::string>> missing;
  std::function<void(const graph::Graph&)> scan = [&](const graph::Graph& gr) {
    for (auto& n : gr.nodes) {
      bool known = n.domain.empty() && (is_builtin(n.op_type) || ops::Registry::get().find(n.op_type));
      if (!known) missing[(n.domain.empty() ? "" : n.domain + ".") + n.op_type].push_back(n.name);
      for (auto& kv : n.attrs)
        if (kv.second.graph) scan(*kv.second.graph);
    }
  };
  scan(g);
  std::vector<std::string> out;
  for (auto& kv : missing) {
    std::string m = kv.first + " (node";
    m += kv.second.size() > 1 ? "s " : " ";
    for (size_t i = 0; i < kv.second.size() && i < 3; ++i) m += (i ? ", '" : "'") + kv.second[i] + "'";
    if (kv.second.size() > 3) m += ", ... " + std::to_string(kv.second.size()) + " in all";
    out.push_back(m + ")");
  }
  return out;
}

namespace {

class Compiler {
 public:
  Compiler(const CompileOptions& opts) : opts_(opts) {
    log_ = opts.log ? opts.log : [](const std::string& s) { std::cerr << s << "\n"; };
  }

  graph::Graph analyze_types(const std::string& path) {
    types_only_ = true;
    return analyze(path);
  }

  graph::Graph analyze(const std::string& path) {
    onnx_import::ImportOptions io;
    io.shapes = opts_.shapes;
    graph::Graph g = pass("import", [&] { return onnx_import::import_file(path, io); });
    check_supported(g);
    g = pass("canonicalize", [&] { return graph::canonicalize(std::move(g)); });
    g = pass("qdq", [&] { return graph::fuse_quantized_products(std::move(g)); });
    g = pass("gelu", [&] { return graph::fuse_gelu(std::move(g)); });
    for (auto& kv : opts_.input_values)
      if (std::find(g.inputs.begin(), g.inputs.end(), kv.first) == g.inputs.end())
        fail(path, ": a value is given for '", kv.first, "', which is not a graph input");
    g = pass("fold", [&] { return sweep(std::move(g)); });
    g = pass("dce", [&] { return graph::eliminate_dead_code(std::move(g)); });
    // Kernels of nodes that dead-code elimination removed are dropped too.
    std::set<std::string> live;
    for (auto& n : g.nodes) live.insert(n.label());
    std::erase_if(kernels_, [&](const Kernel& k) { return k.dead || !live.count(k.node_label); });
    dump_graph("final", g);
    return g;
  }

  Model::Impl compile(const std::string& path) {
    auto start = Clock::now();
    graph::Graph g = analyze(path);
    Model::Impl m;
    std::vector<tir::PrimFunc> funcs;
    std::set<std::string> used_args;
    for (auto& k : kernels_) {
      if (!k.host) funcs.push_back(k.func);
      used_args.insert(k.args.begin(), k.args.end());
    }
    std::erase_if(pending_fills_, [&](const PendingFill& p) { return !used_args.count(p.name); });
    for (auto& kv : opts_.schedules)
      if (std::none_of(kernels_.begin(), kernels_.end(), [&](const Kernel& k) { return !k.host && k.func.name == kv.first; }))
        fail(path, ": a schedule is given for kernel '", kv.first, "', which the model does not have (--dump-ir tir lists them)");
    if (opts_.dump_ir == "tir" || opts_.dump_ir == "all")
      for (auto& k : kernels_)
        if (!k.host) log_("# schedule: " + k.schedule + "\n" + tir::to_string(k.func));
    std::vector<tir::PrimFunc> all = funcs;
    for (auto& p : pending_fills_) all.push_back(p.fill);
    auto t = Clock::now();
    std::vector<tir::PrimFunc> unique = deduplicate(all);
    if (!unique.empty()) m.lib = codegen::JitLibrary::compile(unique, codegen_options(opts_.opt_level));
    if (m.lib) run_constant_fills(*m.lib);
    timings_.push_back({"codegen", ms_since(t)});
    if (opts_.print_timing) log_("  pass codegen: " + std::to_string(timings_.back().ms) + " ms");
    plan(g, m);
    if (!opts_.emit_path.empty()) {
      auto ends = [&](const char* s) { return opts_.emit_path.ends_with(s); };
      auto kind = ends(".s") ? codegen::FileKind::Assembly : ends(".ll") ? codegen::FileKind::LLVMIR : codegen::FileKind::Object;
      codegen::CodegenOptions co = codegen_options(opts_.opt_level);
      co.target = &emit_target(opts_);
      codegen::emit_file(funcs, kind, opts_.emit_path, co);
    }
    m.timings = timings_;
    m.compile_ms = ms_since(start);
    m.threads = opts_.threads;
    if (m.threads < 1) fail("--threads must be at least 1");
    m.pool = std::make_unique<ThreadPool>(m.threads);
    return m;
  }

 private:
  const CompileOptions& opts_;
  std::function<void(const std::string&)> log_;
  std::vector<PassTiming> timings_;
  std::vector<Kernel> kernels_;
  // A constant operand's packed copy, filled by `fill` once the library is compiled.
  struct PendingFill {
    std::string name;  // the prepared_ tensor it fills
    tir::PrimFunc fill;
    std::vector<std::shared_ptr<const HostTensor>> inputs;
    std::shared_ptr<HostTensor> out;
  };
  std::vector<PendingFill> pending_fills_;
  std::map<std::string, std::string> symbol_of_;  // kernel name -> the compiled function it uses
  std::set<std::string> specialized_;  // graph inputs whose values kernels depend on
  bool types_only_ = false;            // analyze only: fold and type, build no kernels
  struct Producer {
    size_t kernel;                      // index in kernels_
    tir::Tensor out;                    // its single output, as computed
    std::vector<tir::Tensor> params;    // its inputs
    std::vector<std::string> args;      // their value names
  };
  std::map<std::string, Producer> producers_;  // values a consumer may still fuse with
  std::map<std::string, int> uses_;            // readers of each value (graph outputs count twice)
  struct Reader {
    std::string op_type, domain;
    std::vector<std::string> inputs;
  };
  std::map<std::string, Reader> reader_;  // a reader of each dequantized value (the only one where uses_ is 1)
  std::set<std::string> dequantized_;                  // outputs of DequantizeLinear nodes
  // Constants made for kernels rather than the graph (packed weights), by argument name.
  std::map<std::string, std::shared_ptr<const HostTensor>> prepared_;

  // How bf16-rounded operands are stored: as bf16 where products run on tiles (AMX), else
  // as f32 holding bf16 values (AVX2 would convert at every load, for no gain).
  DType bf16_storage() const { return bf16_tiles(opts_) ? DType::BF16 : DType::F32; }

  template <typename F>
  graph::Graph pass(const std::string& name, F&& f) {
    auto t = Clock::now();
    graph::Graph g = f();
    timings_.push_back({name, ms_since(t)});
    if (opts_.print_timing) log_("  pass " + name + ": " + std::to_string(timings_.back().ms) + " ms");
    dump_graph(name, g);
    return g;
  }

  void dump_graph(const std::string& name, const graph::Graph& g) {
    if (opts_.dump_ir == name || opts_.dump_ir == "all") log_("// after " + name + "\n" + graph::to_string(g));
  }

  // All unsupported operators of the model, reported at once.
  void check_supported(const graph::Graph& g) {
    auto missing = find_unsupported(g);
    if (missing.empty()) return;
    std::string msg;
    for (auto& m : missing) msg += (msg.empty() ? "" : "; ") + m;
    fail(g.source, ": ", missing.size(), " unsupported operator", missing.size() > 1 ? "s" : "", ": ", msg);
  }

  // A bound on |element| of an 8-bit integer constant, for tir::BufferNode::max_abs: 64 when
  // every value is within [-64, 64] (quantized weights with reduce_range, which the AVX2
  // kernel multiplies as byte pairs), else -1. Coarse on purpose: kernels of layers whose
  // weights differ only in their exact range stay equivalent and compile once.
  static int64_t constant_bound(const graph::Value& v) {
    constexpr int64_t kBytePairBound = 64;
    if (!v.constant || (v.type.dtype != DType::I8 && v.type.dtype != DType::U8)) return -1;
    for (int64_t k = 0; k < v.constant->numel(); ++k)
      if (std::abs(int64_t(v.constant->get_f64(k))) > kBytePairBound) return -1;
    return kBytePairBound;
  }

  const HostTensor* known_value(const graph::Graph& g, const std::string& name, bool* specialized) {
    *specialized = false;
    if (name.empty()) return nullptr;
    const graph::Value& v = g.value(name);
    if (v.constant) return v.constant.get();
    auto it = opts_.input_values.find(name);
    if (it != opts_.input_values.end()) {
      *specialized = true;
      return &it->second;
    }
    return nullptr;
  }

  // Runs one kernel on constant inputs now (constant folding through the same compiler).
  // Runs kernel `f` once now on constant inputs; its last params are the outputs.
  std::vector<HostTensor> evaluate(const tir::PrimFunc& f, const std::vector<const HostTensor*>& ins) {
    auto lib = codegen::JitLibrary::compile({f}, codegen_options(1));
    std::vector<HostTensor> results;
    for (size_t i = ins.size(); i < f.params.size(); ++i) results.emplace_back(f.params[i]->dtype, f.params[i]->shape);
    std::vector<void*> args;
    static char empty[64];
    for (auto* t : ins) args.push_back(t->bytes.empty() ? empty : const_cast<void*>(t->data()));
    for (auto& r : results) args.push_back(r.bytes.empty() ? empty : r.data());
    lib->lookup(f.name)(args.data());
    return results;
  }

  static void set_constant(graph::Graph& g, const std::string& name, HostTensor t) {
    graph::Value& v = g.value(name);
    v.type = {t.dtype, t.shape};
    v.typed = true;
    v.constant = std::make_shared<HostTensor>(std::move(t));
  }

  // Shape / Size: known statically.
  void fold_builtin(graph::Graph& g, const graph::Node& n) {
    const graph::Value& in = g.value(n.inputs.at(0));
    const Shape& s = in.type.shape;
    if (n.op_type == "Size") {
      HostTensor t(DType::I64, {});
      t.as<int64_t>()[0] = shape_numel(s);
      set_constant(g, n.outputs[0], std::move(t));
      return;
    }
    int64_t r = int64_t(s.size());
    auto clampi = [&](int64_t a) { return std::clamp(a < 0 ? a + r : a, int64_t(0), r); };
    int64_t start = 0, end = r;
    if (n.attrs.count("start")) start = clampi(n.attrs.at("start").i);
    if (n.attrs.count("end")) end = clampi(n.attrs.at("end").i);
    HostTensor t(DType::I64, {std::max<int64_t>(0, end - start)});
    for (int64_t i = start; i < end; ++i) t.as<int64_t>()[i - start] = s[i];
    set_constant(g, n.outputs[0], std::move(t));
  }

  // If with a condition known at compile time: the chosen branch's nodes replace it.
  // Copy of subgraph `sub` whose references to enclosing-scope names go through `rename`.
  static graph::Graph rename_free(const graph::Graph& sub, const std::function<std::string(const std::string&)>& rename) {
    graph::Graph r = sub;
    auto inner = [&](const std::string& s) { return s.empty() || sub.values.count(s) ? s : rename(s); };
    for (auto& nn : r.nodes) {
      for (auto& s : nn.inputs) s = inner(s);
      for (auto& kv : nn.attrs)
        if (kv.second.graph) kv.second.graph = std::make_shared<graph::Graph>(rename_free(*kv.second.graph, inner));
    }
    for (auto& o : r.outputs) o = inner(o);
    return r;
  }

  std::vector<graph::Node> inline_if(graph::Graph& g, const graph::Node& n, bool cond) {
    auto it = n.attrs.find(cond ? "then_branch" : "else_branch");
    if (it == n.attrs.end() || !it->second.graph) fail(n.label(), ": missing branch graph");
    const graph::Graph& body = *it->second.graph;
    std::string prefix = n.name + "/";
    std::set<std::string> local;
    for (auto& kv : body.values) local.insert(kv.first);
    auto rename = [&](const std::string& s) { return local.count(s) ? prefix + s : s; };
    for (auto& kv : body.values) {
      graph::Value v = kv.second;
      g.values[prefix + kv.first] = v;
    }
    std::vector<graph::Node> out;
    for (auto nn : body.nodes) {
      nn.name = prefix + nn.name;
      for (auto& s : nn.inputs) s = rename(s);
      for (auto& s : nn.outputs) s = rename(s);
      // Nested branches may read this branch's values: rename their free references too.
      for (auto& kv : nn.attrs)
        if (kv.second.graph) kv.second.graph = std::make_shared<graph::Graph>(rename_free(*kv.second.graph, rename));
      out.push_back(std::move(nn));
    }
    if (body.outputs.size() != n.outputs.size()) fail(n.label(), ": branch output count differs from the node's");
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      graph::Node id;
      id.name = prefix + "out" + std::to_string(i);
      id.op_type = "Identity";
      id.opset = n.opset;
      id.inputs = {rename(body.outputs[i])};
      id.outputs = {n.outputs[i]};
      out.push_back(std::move(id));
    }
    return out;
  }

  // A host operator: folded now when its inputs are constant, else a host step.
  void add_host_op(graph::Graph& g, const graph::Node& n, const std::vector<tir::Tensor>& ins,
                   const std::vector<const HostTensor*>& values, bool all_const, const ops::HostPlan& plan) {
    std::vector<graph::TensorType> in_types;
    std::vector<std::string> args;
    for (size_t i = 0; i < ins.size(); ++i)
      if (ins[i].defined()) {
        in_types.push_back({ins[i].dtype(), ins[i].shape()});
        args.push_back(n.inputs[i]);
      }
    std::vector<graph::TensorType> out_types;
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (n.outputs[i].empty()) continue;
      if (i >= plan.outputs.size()) fail(g.source, ": ", n.label(), ": output ", i, " is not supported");
      graph::Value& v = g.value(n.outputs[i]);
      v.type = plan.outputs[i];
      v.typed = true;
    }
    // The host function receives every declared output, so unused optional ones get scratch.
    std::vector<std::string> outs;
    for (size_t i = 0; i < plan.outputs.size(); ++i) {
      std::string name = i < n.outputs.size() && !n.outputs[i].empty() ? n.outputs[i] : n.name + "/unused" + std::to_string(i);
      if (!g.has_value(name)) g.values[name] = graph::Value{plan.outputs[i], true, nullptr};
      outs.push_back(name);
    }
    auto run = plan.run;
    auto out_plan = plan.outputs;
    auto call = [run, in_types, out_plan](void** a) {
      std::vector<ops::TensorView> iv, ov;
      for (size_t i = 0; i < in_types.size(); ++i) iv.push_back({a[i], in_types[i].dtype, in_types[i].shape});
      for (size_t i = 0; i < out_plan.size(); ++i) ov.push_back({a[in_types.size() + i], out_plan[i].dtype, out_plan[i].shape});
      run(iv, ov);
    };
    if (all_const) {
      std::vector<HostTensor> results;
      std::vector<void*> a;
      for (size_t i = 0; i < ins.size(); ++i)
        if (ins[i].defined()) a.push_back(const_cast<void*>(values[i]->data()));
      for (auto& t : out_plan) results.emplace_back(t.dtype, t.shape);
      for (auto& r : results) a.push_back(r.data());
      call(a.data());
      for (size_t i = 0; i < outs.size(); ++i) set_constant(g, outs[i], std::move(results[i]));
      return;
    }
    args.insert(args.end(), outs.begin(), outs.end());
    Kernel k;
    k.func.name = "host_" + sanitize(n.name);
    k.host = call;
    k.node_label = n.label();
    k.args = args;
    kernels_.push_back(std::move(k));
  }

  // Scratch buffers a kernel fills from constants only (packed weight panels) leave it: each
  // becomes a constant input (`arg_names` gets its value name), filled once at compile time by
  // run_constant_fills rather than on every run.
  void hoist_constant_fills(graph::Graph& g, tir::PrimFunc& f, std::vector<std::string>& arg_names) {
    std::set<const tir::BufferNode*> constants;
    std::map<const tir::BufferNode*, std::shared_ptr<const HostTensor>> value_of;
    for (size_t i = 0; i < arg_names.size(); ++i)
      if (const auto& c = g.value(arg_names[i]).constant) {
        constants.insert(f.params[i].get());
        value_of[f.params[i].get()] = c;
      }
    auto fills = tir::hoist_constant_fills(&f, arg_names.size(), constants);
    for (size_t i = 0; i < fills.size(); ++i) {
      const tir::Buffer& out = fills[i].fill.params.back();
      PendingFill p{f.name + "/const" + std::to_string(i), fills[i].fill, {},
                    std::make_shared<HostTensor>(out->dtype, out->shape)};
      for (size_t k = 0; k + 1 < p.fill.params.size(); ++k) p.inputs.push_back(value_of.at(p.fill.params[k].get()));
      prepared_[p.name] = p.out;
      arg_names.push_back(p.name);
      pending_fills_.push_back(std::move(p));
    }
  }

  // The steps after lowering: loops split where their bounds tests are decided (a padded
  // copy: a plain interior, a constant border), vectorized inner loops (the default), then
  // the user's steps for this kernel if any (CompileOptions::schedules), else parallel outer
  // loops. Returns them as text, for --dump-ir tir.
  std::string schedule_kernel(tir::PrimFunc& f) {
    f.body = tir::partition_loops(f.body);
    std::vector<tir::ScheduleStep> steps = tir::vectorize_inner_loops(&f.body, vector_target(opts_).vector_bytes / 4);
    std::string text = tir::to_string(steps);
    auto user = opts_.schedules.find(f.name);
    if (user != opts_.schedules.end()) {
      try {
        f.body = tir::apply_schedule(f.body, tir::parse_schedule(user->second));
      } catch (const Error& e) {
        fail("kernel ", f.name, ": ", e.what());
      }
      return text + (text.empty() ? "" : "; ") + user->second + " (user)";
    }
    f.body = tir::parallelize_outer_loops(f.body, kMinParallelWork, opts_.threads);
    return text.empty() ? "parallel outer loops" : text + "; parallel outer loops";
  }

  // One function per class of equivalent kernels (tir/equivalence.h): the repeated layers of
  // a model compile once. Records in symbol_of_ which compiled function serves each kernel.
  std::vector<tir::PrimFunc> deduplicate(const std::vector<tir::PrimFunc>& funcs) {
    std::map<std::string, std::vector<size_t>> buckets;
    std::vector<tir::PrimFunc> unique;
    for (auto& f : funcs) {
      auto& bucket = buckets[tir::equivalence_key(f)];
      auto rep = std::find_if(bucket.begin(), bucket.end(), [&](size_t i) { return tir::equivalent(unique[i], f); });
      if (rep == bucket.end()) {
        bucket.push_back(unique.size());
        unique.push_back(f);
        symbol_of_[f.name] = f.name;
      } else {
        symbol_of_[f.name] = unique[*rep].name;
      }
    }
    return unique;
  }

  // Inputs the kernel no longer reads (weights whose packed copy replaced them) leave its
  // parameter list, so the model does not keep them alive.
  static void drop_unread_inputs(tir::PrimFunc& f, std::vector<std::string>& arg_names) {
    std::set<const tir::BufferNode*> written, read;
    tir::buffer_accesses(f.body, &written, &read);
    std::vector<tir::Buffer> params;
    std::vector<std::string> names;
    for (size_t i = 0; i < f.params.size(); ++i)
      if (i >= arg_names.size() || read.count(f.params[i].get())) {
        params.push_back(f.params[i]);
        if (i < arg_names.size()) names.push_back(arg_names[i]);
      }
    f.params = std::move(params);
    arg_names = std::move(names);
  }

  // Runs the constant fills (compiled with the kernels, in the same library) into the
  // tensors prepared for them, for the kernels that survived dead-code elimination.
  void run_constant_fills(const codegen::JitLibrary& lib) {
    static char empty[64];
    for (auto& p : pending_fills_) {
      std::vector<void*> args;
      for (auto& t : p.inputs) args.push_back(t->bytes.empty() ? empty : const_cast<void*>(t->data()));
      args.push_back(p.out->bytes.empty() ? empty : p.out->data());
      lib.lookup(symbol_of_.at(p.fill.name))(args.data());
    }
  }

  // A DequantizeLinear (1 byte in, 4 out) read only by an elementwise node that combines it
  // with another dequantized value before it (a residual Add of two quantized branches) stays
  // out of its producer: the reader joins the other branch's kernel and inlines this one, so
  // this branch's bytes are stored, not an f32 copy four times their size. Int8 ResNet-50's
  // projection shortcuts stored 3.2 MB of f32 each that the residual Add read back.
  bool stays_for_reader(const graph::Node& n) const {
    static const std::set<std::string> kCombining{"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"};
    if (n.op_type != "DequantizeLinear" || !n.domain.empty() || n.outputs.size() != 1) return false;
    auto uses = uses_.find(n.outputs[0]);
    auto reader = reader_.find(n.outputs[0]);
    if (uses == uses_.end() || uses->second != 1 || reader == reader_.end()) return false;
    const Reader& r = reader->second;
    if (!r.domain.empty() || !kCombining.count(r.op_type)) return false;
    for (auto& in : r.inputs) {
      if (in == n.outputs[0]) return false;  // no dequantized input before this one
      auto u = uses_.find(in);
      if (dequantized_.count(in) && u != uses_.end() && u->second == 1) return true;
    }
    return false;
  }

  // Elementwise consumers join their producer's kernel: when node `n` reads a value that only
  // it uses, made by a kernel with that single output, and every output of `n` is elementwise
  // (no reduction), `n` is converted again over the producer's tensor instead of a
  // placeholder; the producer's kernel is dropped and the new kernel computes both (the
  // producer's result is inlined, or the consumer becomes a reduction's epilogue). A reducing
  // producer is preferred, and the other inputs' single-use, wholly elementwise producers of
  // the consumer's own shape are inlined as well (a residual Add's DequantizeLinear: the
  // quantized bytes are read instead of a stored f32 copy). A Reduce*
  // node, which reads each input element once, likewise takes in a wholly elementwise
  // producer, inlined into its terms (LayerNorm's squares: Pow then ReduceMean), so the
  // producer's tensor is never stored. Other reductions (a Conv's window) would recompute it.
  // Returns the fused producers' description ("node 'a' (Conv) + "), or "" when nothing fused.
  std::string fuse_into_producer(const graph::Node& n, const ops::OpInfo* info, const std::vector<tir::Tensor>& ins,
                                 const std::vector<const HostTensor*>& values, std::vector<tir::Tensor>& outs,
                                 std::vector<tir::Tensor>& params, std::vector<std::string>& arg_names) {
    // Elementwise: no stage of the consumer's own computation (down to its placeholders) reduces.
    std::function<bool(const tir::Tensor&)> reduces = [&](const tir::Tensor& t) {
      if (!t.op()) return false;
      if (t.op()->body.kind() == tir::ExprKind::Reduce) return true;
      for (auto& in : t.op()->inputs)
        if (reduces(in)) return true;
      return false;
    };
    if (stays_for_reader(n)) return "";
    bool reads_once = n.domain.empty() && n.op_type.rfind("Reduce", 0) == 0;
    for (auto& o : outs)
      if (!o.op() || (reduces(o) && !reads_once)) return "";
    auto fusable = [&](size_t i) {
      auto it = ins[i].defined() ? producers_.find(n.inputs[i]) : producers_.end();
      if (it == producers_.end() || uses_[n.inputs[i]] != 1) return false;
      return !(reads_once && reduces(it->second.out));
    };
    auto producer_reduces = [&](size_t i) { return reduces(producers_.at(n.inputs[i]).out); };
    std::optional<size_t> main;  // the first fusable input, or the first whose producer reduces
    for (size_t i = 0; i < ins.size(); ++i)
      if (fusable(i) && (!main || (producer_reduces(i) && !producer_reduces(*main)))) main = i;
    if (!main) return "";
    std::vector<std::optional<Producer>> taken(ins.size());
    for (size_t i = 0; i < ins.size(); ++i) {
      if (!fusable(i)) continue;
      const Producer& p = producers_.at(n.inputs[i]);
      bool inline_side = !reduces(p.out) && !reads_once && p.out.shape() == outs[0].shape();
      if (i != *main && !inline_side) continue;
      taken[i] = p;
      producers_.erase(n.inputs[i]);
    }
    std::vector<tir::Tensor> fused_ins = ins;
    for (size_t i = 0; i < ins.size(); ++i)
      if (taken[i]) fused_ins[i] = taken[i]->out;
    ops::OpContext ctx(n, fused_ins, values);
    std::vector<tir::Tensor> fused_outs = info->convert(ctx);
    std::vector<tir::Tensor> used;
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty()) used.push_back(fused_outs[k]);
    outs = used;
    params = taken[*main]->params;
    arg_names = taken[*main]->args;
    std::string label;
    auto take = [&](const Producer& p) {
      kernels_[p.kernel].dead = true;
      label += kernels_[p.kernel].fused + kernels_[p.kernel].node_label + " + ";
    };
    take(*taken[*main]);
    for (size_t k = 0; k < ins.size(); ++k) {
      if (k == *main || !ins[k].defined()) continue;
      if (!taken[k]) {
        params.push_back(ins[k]);
        arg_names.push_back(n.inputs[k]);
        continue;
      }
      params.insert(params.end(), taken[k]->params.begin(), taken[k]->params.end());
      arg_names.insert(arg_names.end(), taken[k]->args.begin(), taken[k]->args.end());
      take(*taken[k]);
    }
    return label;
  }

  graph::Graph sweep(graph::Graph g) {
    // Values that graph outputs, sequences or If/Loop bodies read may be read again by nodes
    // created later in this sweep: they count twice, so they are always stored.
    std::function<void(const graph::Graph&, int)> count = [&](const graph::Graph& gr, int weight) {
      for (auto& n : gr.nodes) {
        int w = SequenceLowering::is_sequence_op(n.op_type) ? 2 : weight;
        for (auto& in : n.inputs) {
          uses_[in] += w;
          if (dequantized_.count(in)) reader_[in] = {n.op_type, n.domain, n.inputs};  // producers come first
        }
        if (n.op_type == "DequantizeLinear" && n.domain.empty())
          for (auto& o : n.outputs) dequantized_.insert(o);
        for (auto& kv : n.attrs)
          if (kv.second.graph) count(*kv.second.graph, 2);
      }
      for (auto& o : gr.outputs) uses_[o] += 2;
    };
    count(g, 1);
    std::deque<graph::Node> work(g.nodes.begin(), g.nodes.end());
    std::vector<graph::Node> kept;
    SequenceLowering sequences;
    int index = 0;
    // Channel-blocked convolution chains (ops/blocked_layout.h), for f32 models being compiled.
    std::optional<ops::BlockedLayout> layout;
    if (opts_.blocked_layout && opts_.precision == Precision::FP32 && !types_only_) layout.emplace(g, opts_.winograd);
    while (!work.empty()) {
      graph::Node n = std::move(work.front());
      work.pop_front();
      // Before the type check: a blocked chain reads values whose plain form is never made.
      if (layout)
        if (auto blocked = layout->rewrite(n, g)) {
          // A blocked value is read where its plain value was: at most as often.
          for (auto& [name, plain] : blocked->blocked_outputs) uses_[name] = plain.empty() ? 1 : uses_[plain];
          for (auto& in : n.inputs) --uses_[in];
          for (auto& m : blocked->nodes)
            for (auto& in : m.inputs)
              if (!layout->is_blocked(in)) ++uses_[in];
          for (auto it = blocked->nodes.rbegin(); it != blocked->nodes.rend(); ++it) work.push_front(std::move(*it));
          continue;
        }
      for (auto& in : n.inputs)
        if (!in.empty() && !sequences.is_sequence(in) && (!g.has_value(in) || !g.value(in).typed))
          fail(g.source, ": ", n.label(), ": input '", in, "' has no known type");
      if (auto narrowed = graph::narrow_operands(n, g, opts_.precision, bf16_storage())) {
        // The rewritten nodes replace n's reads of its operands.
        for (auto& in : n.inputs) --uses_[in];
        for (auto& m : *narrowed)
          for (auto& in : m.inputs) ++uses_[in];
        for (auto it = narrowed->rbegin(); it != narrowed->rend(); ++it) work.push_front(std::move(*it));
        continue;
      }
      if (SequenceLowering::is_sequence_op(n.op_type) && n.domain.empty()) {
        sequences.lower(n, g, work, [&](const std::string& name) {
          bool sp = false;
          const HostTensor* v = known_value(g, name, &sp);
          if (sp) specialized_.insert(name);
          return v;
        });
        continue;
      }
      if (n.op_type == "Shape" || n.op_type == "Size") {
        fold_builtin(g, n);
        continue;
      }
      std::vector<const HostTensor*> values;
      bool all_const = !n.inputs.empty(), all_known = all_const;
      std::vector<bool> spec;
      for (auto& in : n.inputs) {
        bool sp = false;
        values.push_back(known_value(g, in, &sp));
        spec.push_back(sp);
        if (!in.empty() && (!values.back() || sp)) all_const = false;
        if (!in.empty() && !values.back()) all_known = false;
      }
      if (n.op_type == "If") {
        if (!values.at(0))
          fail(g.source, ": ", n.label(), ": the condition must be known at compile time (pass the inputs it depends on with --inputs)");
        if (spec[0]) specialized_.insert(n.inputs[0]);
        auto nodes = inline_if(g, n, values[0]->get_f64(0) != 0);
        for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) work.push_front(*it);
        continue;
      }
      const ops::OpInfo* info = ops::Registry::get().find(n.op_type, n.domain);
      if (!info) fail(g.source, ": ", n.label(), ": unsupported operator");
      std::vector<tir::Tensor> ins;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        if (n.inputs[i].empty()) { ins.emplace_back(); continue; }
        const graph::Value& v = g.value(n.inputs[i]);
        ins.push_back(tir::placeholder(v.type.shape, v.type.dtype, "in" + std::to_string(i), constant_bound(v)));
      }
      ops::OpContext ctx(n, ins, values);
      std::vector<tir::Tensor> outs;
      ops::HostPlan host;
      try {
        if (info->host) host = info->host(ctx);
        else outs = info->convert(ctx);
      } catch (const InternalError& e) {
        fail(g.source, ": ", n.label(), ": ", e.what());
      } catch (const Error& e) {
        std::string msg = e.what();
        if (msg.rfind("node '", 0) == 0) fail(g.source, ": ", msg);
        fail(g.source, ": ", n.label(), ": ", msg);
      }
      if (info->host) {
        for (size_t i = 0; i < ins.size(); ++i)
          if (spec[i] && ctx.used_values()[i]) specialized_.insert(n.inputs[i]);
        add_host_op(g, n, ins, values, all_const, host);
        if (!all_const) kept.push_back(std::move(n));
        continue;
      }
      std::vector<tir::Tensor> used_outs;
      std::vector<std::string> out_names;
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        if (n.outputs[i].empty()) continue;
        if (i >= outs.size() || !outs[i].defined())
          fail(g.source, ": ", n.label(), ": output ", i, " is not supported");
        graph::Value& v = g.value(n.outputs[i]);
        v.type = {outs[i].dtype(), outs[i].shape()};
        v.typed = true;
        used_outs.push_back(outs[i]);
        out_names.push_back(n.outputs[i]);
      }
      std::vector<tir::Tensor> params;
      std::vector<std::string> arg_names;
      std::vector<const HostTensor*> const_args;
      for (size_t i = 0; i < ins.size(); ++i)
        if (ins[i].defined()) {
          params.push_back(ins[i]);
          arg_names.push_back(n.inputs[i]);
          const_args.push_back(values[i]);
        }
      std::string kname = "k" + std::to_string(index++) + "_" + sanitize(n.name).substr(0, 48);
      // Scalars and small integer tensors computed from inputs the model is specialized on are
      // shape arithmetic (sizes, counts, limits): fold them too, so later shapes are known.
      bool shape_like = all_known && !used_outs.empty();
      for (auto& o : used_outs)
        shape_like &= shape_numel(o.shape()) <= 1 || (dtype_is_int(o.dtype()) && shape_numel(o.shape()) <= 64);
      if (all_const || shape_like) {
        for (size_t i = 0; i < ins.size(); ++i)
          if (spec[i]) specialized_.insert(n.inputs[i]);
        tir::PrimFunc f = tir::lower(kname, params, used_outs, vector_target(opts_));
        auto results = evaluate(f, const_args);
        for (size_t i = 0; i < out_names.size(); ++i) set_constant(g, out_names[i], std::move(results[i]));
        continue;
      }
      for (size_t i = 0; i < ins.size(); ++i)
        if (spec[i] && ctx.used_values()[i]) specialized_.insert(n.inputs[i]);
      if (types_only_) {  // kiln info: the types are known; no kernel is needed
        kept.push_back(std::move(n));
        continue;
      }
      std::string fused = fuse_into_producer(n, info, ins, values, used_outs, params, arg_names);
      tir::BufferSet constants;
      for (size_t i = 0; i < params.size(); ++i)
        if (g.value(arg_names[i]).constant) constants.insert(params[i].buffer().get());
      tir::PrimFunc f = tir::lower(kname, params, used_outs, vector_target(opts_), constants);
      std::vector<std::string> input_names = arg_names;  // before fills join them
      hoist_constant_fills(g, f, arg_names);
      drop_unread_inputs(f, arg_names);
      std::string schedule = schedule_kernel(f);
      // Generated code assumes that a written buffer overlaps no other argument (codegen's
      // alias scopes): an output is never also an input of its kernel.
      for (auto& o : out_names)
        if (std::count(arg_names.begin(), arg_names.end(), o))
          fail(n.label(), ": output '", o, "' is also one of the node's inputs");
      arg_names.insert(arg_names.end(), out_names.begin(), out_names.end());
      kernels_.push_back({f, nullptr, false, n.label(), fused, arg_names, schedule});
      if (used_outs.size() == 1 && uses_[out_names[0]] == 1)
        producers_[out_names[0]] = {kernels_.size() - 1, used_outs[0], params, input_names};
      kept.push_back(std::move(n));
    }
    g.nodes = std::move(kept);
    return g;
  }

  // Offsets of the intermediates in the per-run arena, from their lifetimes over the steps.
  static void plan_intermediates(Model::Impl& m) {
    std::vector<int> temps;
    std::vector<Lifetime> lifetimes;
    std::map<int, size_t> index;
    for (size_t k = 0; k < m.steps.size(); ++k)
      for (int a : m.steps[k].args) {
        if (m.slots[a].kind != BufferSlot::Kind::Temp) continue;
        auto [it, fresh] = index.try_emplace(a, lifetimes.size());
        if (fresh) {
          temps.push_back(a);
          lifetimes.push_back({m.slots[a].bytes(), int(k), int(k)});
        }
        lifetimes[it->second].last = int(k);
      }
    MemoryPlan p = plan_memory(lifetimes);
    for (size_t i = 0; i < temps.size(); ++i) m.slots[temps[i]].arena_offset = p.offsets[i];
    m.arena_bytes = p.arena_bytes;
    m.unshared_bytes = p.unshared_bytes;
  }

  void plan(const graph::Graph& g, Model::Impl& m) {
    std::map<std::string, int> slot_of;
    auto slot = [&](const std::string& name) {
      auto it = slot_of.find(name);
      if (it != slot_of.end()) return it->second;
      if (auto p = prepared_.find(name); p != prepared_.end()) {
        BufferSlot s;
        s.name = name;
        s.dtype = p->second->dtype;
        s.shape = p->second->shape;
        s.kind = BufferSlot::Kind::Constant;
        s.constant = p->second;
        m.slots.push_back(s);
        return slot_of[name] = int(m.slots.size() - 1);
      }
      const graph::Value& v = g.value(name);
      BufferSlot s;
      s.name = name;
      s.dtype = v.type.dtype;
      s.shape = v.type.shape;
      auto in = std::find(g.inputs.begin(), g.inputs.end(), name);
      auto out = std::find(g.outputs.begin(), g.outputs.end(), name);
      if (in != g.inputs.end()) {
        s.kind = BufferSlot::Kind::Input;
        s.io_index = int(in - g.inputs.begin());
      } else if (v.constant) {
        s.kind = BufferSlot::Kind::Constant;
        s.constant = v.constant;
      } else if (out != g.outputs.end()) {
        s.kind = BufferSlot::Kind::Output;
        s.io_index = int(out - g.outputs.begin());
      }
      m.slots.push_back(s);
      return slot_of[name] = int(m.slots.size() - 1);
    };
    for (auto& name : g.inputs) {
      const graph::Value& v = g.value(name);
      m.inputs.push_back({name, v.type.dtype, v.type.shape});
      m.input_slots.push_back(slot(name));
      auto sp = opts_.input_values.find(name);
      if (sp != opts_.input_values.end() && specialized_.count(name))
        m.specialized[int(m.inputs.size() - 1)] = sp->second;
    }
    for (auto& k : kernels_) {
      Step st;
      st.kernel = k.func.name;
      st.node = k.fused + k.node_label;
      if (k.host) st.host = k.host;
      else st.fn = m.lib->lookup(symbol_of_.at(k.func.name));
      for (auto& a : k.args) st.args.push_back(slot(a));
      if (k.host)
        for (int a : st.args) m.slots[a].zero_fill = true;
      if (!k.host) {
        tir::KernelCost cost = tir::estimate_cost(k.func);
        st.flops = cost.flops;
        st.bytes = cost.bytes;
      }
      m.steps.push_back(std::move(st));
    }
    plan_intermediates(m);
    for (auto& name : g.outputs) {
      const graph::Value& v = g.value(name);
      if (!v.typed) fail(g.source, ": output '", name, "' has no known type");
      m.outputs.push_back({name, v.type.dtype, v.type.shape});
      m.output_slots.push_back(slot(name));
    }
  }
};

}  // namespace

graph::Graph analyze(const std::string& path, const CompileOptions& opts) {
  Compiler c(opts);
  return c.analyze_types(path);
}

Model Model::compile_file(const std::string& path, const CompileOptions& opts) {
  Compiler c(opts);
  try {
    return Model(std::make_unique<Impl>(c.compile(path)));
  } catch (const Error&) {
    throw;
  } catch (const InternalError& e) {
    fail(path, ": ", e.what());
  }
}

std::vector<std::string> supported_ops() {
  auto v = ops::Registry::get().names();
  for (const char* b : {"Shape", "Size", "If", "SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase",
                        "SequenceAt", "SequenceLength", "SplitToSequence", "ConcatFromSequence"})
    if (std::find(v.begin(), v.end(), b) == v.end()) v.push_back(b);
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace kiln
