#include "commands.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>

namespace kiln::cli {

namespace fs = std::filesystem;

namespace {

const std::map<std::string, bool> kCompileFlags = {
    {"inputs", true}, {"shape", true}, {"threads", true}, {"dump-ir", true}, {"timing", false}, {"emit", true},
    {"schedule", true}, {"precision", true}, {"emulate-amx", false}, {"emit-target", true}, {"layout", true}, {"winograd", true}, {"help", false}};

const char* kRunHelp =
    "usage: kiln run MODEL.onnx [--inputs DIR] [--shape NAME=DxDx..] [--save-outputs DIR] [--threads N]\n"
    "                           [--dump-ir PASS] [--timing]\n"
    "Compiles the model to native code and runs it once.\n"
    "  --inputs DIR        input_0.pb, input_1.pb, ... (ONNX TensorProto, graph-input order);\n"
    "                      default: deterministic random inputs\n"
    "  --shape NAME=DIMS   shape of a graph input with symbolic dims (default for a symbolic dim: 1)\n"
    "  --save-outputs DIR  write output_0.pb, output_1.pb, ...\n"
    "  --threads N         worker threads (default 1)\n"
    "  --dump-ir PASS      print the graph after PASS (import, canonicalize, qdq, gelu, fold, dce, final,\n"
    "                      all) or every kernel's loop IR (tir)\n"
    "  --timing            print the time of each compiler pass\n"
    "  --emit FILE         also write the generated code: FILE.s assembly, FILE.ll LLVM IR, else an object file\n"
    "  --emit-target T     the machine FILE is for: host (default) or sapphirerapids (AVX-512, AMX; with\n"
    "                      --precision bf16 the products are then scheduled on AMX tiles)\n"
    "  --schedule FILE     replay schedule steps per kernel, one kernel per line:\n"
    "                        k3_Relu_11: split(x, 8); vectorize(x_i); parallel(x_o)\n"
    "                      (kernel and loop names as --dump-ir tir prints them; '#' starts a comment;\n"
    "                      a kernel given steps gets no automatic parallel loops)\n"
    "  --precision P       fp32 (default) or bf16: MatMul/Gemm/Conv operands rounded to bfloat16\n"
    "                      (weights at compile time), f32 accumulation and results, the rest f32\n"
    "  --emulate-amx       schedule bf16 (with --precision bf16) and quantized int8 MatMul/Gemm for AMX\n"
    "                      tiles even on a CPU without AMX, running them as plain loops (slow; tests the path)\n"
    "  --layout L          blocked (default): chains of f32 convolutions and the ops between them keep\n"
    "                      16 channels contiguous per pixel (NCHW16c), converted back at the chain's end;\n"
    "                      plain: every tensor in the model's own layout\n"
    "  --winograd on|off   on (default, with --layout blocked): f32 3x3 convolutions at stride 1, padding 1\n"
    "                      (49+ pixels, 32+ input channels) by Winograd's F(2x2, 3x3), 2.25x fewer\n"
    "                      multiplies; off: computed directly\n";

const char* kBenchHelp =
    "usage: kiln bench MODEL.onnx [--inputs DIR] [--shape NAME=DxDx..] [--threads N] [--iters K] [--warmup W] [--json]\n"
    "                             [--profile] [--top N] [--trace FILE] [--schedule FILE]\n"
    "Compiles the model once, then times K runs after W warm-up runs (compile flags as for kiln run).\n"
    "  --iters K   timed runs (default 20)\n"
    "  --warmup W  untimed runs first (default 3)\n"
    "  --json      print one JSON object: compile_ms, median_ms, min_ms, mean_ms, iters, threads, ...\n"
    "  --profile   also print the kernels taking the most time (mean over the timed runs) with their\n"
    "              GFLOP/s, % of the measured fp32 peak of the threads used, and argument bytes\n"
    "  --top N     with --profile: how many kernels to list (default 25; 0: all)\n"
    "  --trace F   write one run's kernels as a Chrome trace (chrome://tracing, Perfetto) to F\n"
    "With --precision bf16 it also compiles the fp32 model and compares outputs on the inputs (and, without\n"
    "--inputs, 7 more random ones): max abs error, max rel error (|d| / max(|ref|, 1e-3 max|ref|)) and, for\n"
    "2-D [rows, classes] outputs, the rows whose argmax (top-1 class) agrees.\n";

const char* kInfoHelp =
    "usage: kiln info MODEL.onnx [--shape NAME=DxDx..]\n"
    "Prints inputs, outputs, operator histogram, parameter count, FLOPs estimate and unsupported ops.\n";

HostTensor random_tensor(const TensorInfo& info, std::mt19937& rng) {
  HostTensor t(info.dtype, info.shape);
  std::uniform_real_distribution<double> uf(-1.0, 1.0);
  std::uniform_int_distribution<int> ui(0, 9);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dtype_is_float(info.dtype)) t.set_f64(i, uf(rng));
    else if (info.dtype == DType::Bool) t.set_f64(i, ui(rng) & 1);
    else t.set_f64(i, ui(rng));
  }
  return t;
}

struct Prepared {
  CompileOptions opts;
  std::vector<HostTensor> inputs;
  std::unique_ptr<Model> model;
};

// "KERNEL: step; step" per line; blank lines and '#' comments skipped.
std::map<std::string, std::string> read_schedule_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot read the schedule file");
  std::map<std::string, std::string> r;
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    line = line.substr(0, line.find('#'));
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    size_t colon = line.find(':');
    std::string kernel = colon == std::string::npos ? "" : line.substr(0, colon);
    kernel.erase(0, kernel.find_first_not_of(" \t"));
    kernel.erase(kernel.find_last_not_of(" \t") + 1);
    if (kernel.empty()) fail(path, ":", no, ": expected 'KERNEL: steps'");
    if (r.count(kernel)) fail(path, ":", no, ": kernel ", kernel, " is scheduled twice");
    r[kernel] = line.substr(colon + 1);
  }
  return r;
}

Precision parse_precision(const std::string& s) {
  if (s.empty() || s == "fp32") return Precision::FP32;
  if (s == "bf16") return Precision::BF16;
  fail("--precision: '", s, "' is not one of fp32, bf16");
}

Prepared prepare(const Args& a) {
  if (a.model.empty()) fail("no model given (see kiln ", a.command, " --help)");
  Prepared p;
  p.opts.shapes = parse_shapes(a.flags.count("shape") ? a.flags.at("shape") : std::vector<std::string>{});
  p.opts.threads = a.get_int("threads", 1, 1);
  p.opts.dump_ir = a.get("dump-ir");
  p.opts.print_timing = a.has("timing");
  p.opts.emit_path = a.get("emit");
  p.opts.emit_target = a.get("emit-target");
  if (a.has("emit-target") && !a.has("emit")) fail("--emit-target needs --emit FILE");
  if (a.has("schedule")) p.opts.schedules = read_schedule_file(a.get("schedule"));
  p.opts.precision = parse_precision(a.get("precision"));
  p.opts.emulate_amx = a.has("emulate-amx");
  std::string layout = a.get("layout");
  if (layout != "" && layout != "blocked" && layout != "plain") fail("--layout: '", layout, "' is not one of blocked, plain");
  p.opts.blocked_layout = layout != "plain";
  std::string winograd = a.get("winograd");
  if (winograd != "" && winograd != "on" && winograd != "off") fail("--winograd: '", winograd, "' is not one of on, off");
  p.opts.winograd = winograd != "off";
  if (a.has("inputs")) {
    std::string dir = a.get("inputs");
    if (!fs::is_directory(dir)) fail(dir, ": not a directory");
    std::vector<HostTensor> files;
    for (int i = 0; fs::exists(dir + "/input_" + std::to_string(i) + ".pb"); ++i)
      files.push_back(load_tensor(dir + "/input_" + std::to_string(i) + ".pb"));
    // Shapes come from the files; the files' values also decide shape inputs.
    auto infos = read_model_inputs(a.model, p.opts.shapes);
    if (files.size() != infos.size())
      fail(dir, ": has ", files.size(), " input files, the model takes ", infos.size(), " inputs");
    for (size_t i = 0; i < infos.size(); ++i) {
      if (files[i].dtype != infos[i].dtype)
        fail(dir, "/input_", i, ".pb: type ", dtype_name(files[i].dtype), " but input '", infos[i].name, "' is ",
             dtype_name(infos[i].dtype));
      p.opts.shapes[infos[i].name] = files[i].shape;
      p.opts.input_values[infos[i].name] = files[i];
    }
    p.inputs = std::move(files);
  }
  p.model = std::make_unique<Model>(Model::compile_file(a.model, p.opts));
  if (!a.has("inputs")) {
    std::mt19937 rng(1234);
    for (auto& info : p.model->inputs()) p.inputs.push_back(random_tensor(info, rng));
  }
  return p;
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

// Chrome trace event format: one complete ("X") event per kernel, times in microseconds.
void write_trace(const std::string& path, const std::vector<Model::KernelTime>& run) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) fail(path, ": cannot write the trace");
  std::fprintf(f, "{\"traceEvents\": [\n");
  for (size_t i = 0; i < run.size(); ++i)
    std::fprintf(f, "  {\"name\": \"%s\", \"cat\": \"kernel\", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, \"pid\": 1, \"tid\": 1, "
                 "\"args\": {\"nodes\": \"%s\"}}%s\n",
                 json_escape(run[i].kernel).c_str(), run[i].last_start_ms * 1000, run[i].last_ms * 1000,
                 json_escape(run[i].node).c_str(), i + 1 < run.size() ? "," : "");
  std::fprintf(f, "], \"displayTimeUnit\": \"ms\"}\n");
  std::fclose(f);
  std::printf("wrote a trace of %zu kernels to %s\n", run.size(), path.c_str());
}

void summarize(const TensorInfo& info, const HostTensor& t) {
  double mn = INFINITY, mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = t.get_f64(i);
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    sum += v;
  }
  std::printf("  %s: %s%s", info.name.c_str(), dtype_name(t.dtype), shape_str(t.shape).c_str());
  if (t.numel()) std::printf("  min %.6g max %.6g mean %.6g", mn, mx, sum / double(t.numel()));
  std::printf("\n    [");
  for (int64_t i = 0; i < std::min<int64_t>(t.numel(), 8); ++i) std::printf("%s%.6g", i ? ", " : "", t.get_f64(i));
  std::printf("%s]\n", t.numel() > 8 ? ", ..." : "");
}

// How far a reduced-precision model's outputs are from the fp32 model's on the same inputs.
struct PrecisionError {
  int samples = 0;
  double max_abs = 0, max_rel = 0;
  int top1_agree = 0, top1_total = 0;  // classifier outputs: rows whose argmax agrees
};

// Relative error of one element against a reference whose largest magnitude is `scale`:
// |d| / max(|ref|, 1e-3 * scale), so elements near zero do not dominate.
double relative_error(double got, double ref, double scale) {
  return std::fabs(got - ref) / std::max(std::fabs(ref), 1e-3 * scale);
}

void compare_outputs(const std::vector<HostTensor>& got, const std::vector<HostTensor>& ref, PrecisionError* e) {
  for (size_t o = 0; o < ref.size(); ++o) {
    if (!dtype_is_float(ref[o].dtype)) continue;
    double scale = 0;
    for (int64_t i = 0; i < ref[o].numel(); ++i) scale = std::max(scale, std::fabs(ref[o].get_f64(i)));
    for (int64_t i = 0; i < ref[o].numel(); ++i) {
      double g = got[o].get_f64(i), r = ref[o].get_f64(i);
      e->max_abs = std::max(e->max_abs, std::fabs(g - r));
      e->max_rel = std::max(e->max_rel, relative_error(g, r, scale));
    }
    // A 2-D [rows, classes] output is read as class scores.
    if (ref[o].shape.size() != 2 || ref[o].shape[1] < 2) continue;
    int64_t rows = ref[o].shape[0], classes = ref[o].shape[1];
    for (int64_t r = 0; r < rows; ++r) {
      int64_t bg = 0, br = 0;
      for (int64_t c = 1; c < classes; ++c) {
        if (got[o].get_f64(r * classes + c) > got[o].get_f64(r * classes + bg)) bg = c;
        if (ref[o].get_f64(r * classes + c) > ref[o].get_f64(r * classes + br)) br = c;
      }
      e->top1_agree += bg == br;
      ++e->top1_total;
    }
  }
}

// Runs the model compiled in fp32 beside `p` on p's inputs and, when no inputs were given,
// on `extra` more random inputs.
PrecisionError precision_error(const Args& a, const Prepared& p, int extra) {
  CompileOptions ref_opts = p.opts;
  ref_opts.precision = Precision::FP32;
  ref_opts.emit_path.clear();
  ref_opts.dump_ir.clear();
  ref_opts.print_timing = false;
  Model ref = Model::compile_file(a.model, ref_opts);
  std::vector<std::vector<HostTensor>> samples{p.inputs};
  if (!a.has("inputs")) {
    std::mt19937 rng(99);
    for (int i = 0; i < extra; ++i) {
      samples.emplace_back();
      for (auto& info : p.model->inputs()) samples.back().push_back(random_tensor(info, rng));
    }
  }
  PrecisionError e;
  for (auto& in : samples) {
    compare_outputs(p.model->run(in), ref.run(in), &e);
    ++e.samples;
  }
  return e;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  auto flags = kCompileFlags;
  flags["save-outputs"] = true;
  Args a = parse(argc, argv, flags);
  if (a.has("help")) { std::cout << kRunHelp; return 0; }
  Prepared p = prepare(a);
  std::printf("compiled %s: %d kernels in %.1f ms\n", a.model.c_str(), p.model->num_kernels(), p.model->compile_ms());
  auto t0 = std::chrono::steady_clock::now();
  auto outs = p.model->run(p.inputs);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("ran in %.3f ms (%d thread%s)\noutputs:\n", ms, p.opts.threads, p.opts.threads > 1 ? "s" : "");
  for (size_t i = 0; i < outs.size(); ++i) summarize(p.model->outputs()[i], outs[i]);
  if (a.has("save-outputs")) {
    std::string dir = a.get("save-outputs");
    fs::create_directories(dir);
    for (size_t i = 0; i < outs.size(); ++i)
      save_tensor(dir + "/output_" + std::to_string(i) + ".pb", outs[i], p.model->outputs()[i].name);
    std::printf("saved %zu outputs to %s\n", outs.size(), dir.c_str());
  }
  return 0;
}

int cmd_bench(int argc, char** argv) {
  auto flags = kCompileFlags;
  flags["iters"] = true;
  flags["warmup"] = true;
  flags["json"] = false;
  flags["profile"] = false;
  flags["top"] = true;
  flags["trace"] = true;
  Args a = parse(argc, argv, flags);
  if (a.has("help")) { std::cout << kBenchHelp; return 0; }
  int iters = a.get_int("iters", 20, 1), warmup = a.get_int("warmup", 3, 0), top = a.get_int("top", 25, 0);
  Prepared p = prepare(a);
  for (int i = 0; i < warmup; ++i) p.model->run(p.inputs);
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    p.model->run(p.inputs);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<double> s = t;
  std::sort(s.begin(), s.end());
  double median = s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  double mean = 0;
  for (double v : t) mean += v / double(t.size());
  if (a.has("trace")) write_trace(a.get("trace"), p.model->profile(p.inputs, 1));
  std::optional<PrecisionError> err;
  if (p.opts.precision != Precision::FP32) err = precision_error(a, p, 7);
  if (a.has("profile")) {
    auto prof = p.model->profile(p.inputs, iters);
    double total = 0;
    for (auto& k : prof) total += k.ms;
    std::sort(prof.begin(), prof.end(), [](auto& x, auto& y) { return x.ms > y.ms; });
    // % of peak against every thread the model may use: a kernel that runs serially shows
    // at most 100 / threads.
    double peak = measured_fp32_peak_gflops() * p.opts.threads;
    std::printf("%-9s %6s %8s %6s %9s  %-36s %s\n", "ms", "share", "GFLOP/s", "%peak", "MB", "kernel", "node");
    for (size_t i = 0; i < prof.size() && (top == 0 || i < size_t(top)); ++i) {
      const auto& k = prof[i];
      double gflops = k.ms > 0 ? double(k.flops) / (k.ms * 1e6) : 0;
      std::printf("%-9.3f %5.1f%% %8.1f %5.1f%% %9.2f  %-36s %s\n", k.ms, 100 * k.ms / total, gflops,
                  peak > 0 ? 100 * gflops / peak : 0.0, double(k.bytes) / 1e6, k.kernel.c_str(), k.node.c_str());
    }
    int64_t flops = 0;
    for (auto& k : prof) flops += k.flops;
    std::printf("fp32 peak measured here: %.1f GFLOP/s per thread x %d thread%s; model %.2f GFLOP at %.1f GFLOP/s\n",
                peak / p.opts.threads, p.opts.threads, p.opts.threads > 1 ? "s" : "", flops / 1e9,
                total > 0 ? flops / (total * 1e6) : 0.0);
    std::printf("total %.3f ms in %zu kernels\n", total, prof.size());
  }
  if (a.has("json")) {
    std::printf("{\"model\": \"%s\", \"compile_ms\": %.3f, \"median_ms\": %.4f, \"min_ms\": %.4f, \"mean_ms\": %.4f, "
                "\"max_ms\": %.4f, \"iters\": %d, \"warmup\": %d, \"threads\": %d, \"kernels\": %d, "
                "\"intermediate_bytes\": %zu, \"unshared_intermediate_bytes\": %zu, \"precision\": \"%s\"",
                a.model.c_str(), p.model->compile_ms(), median, s.front(), mean, s.back(), iters, warmup,
                p.opts.threads, p.model->num_kernels(), p.model->intermediate_bytes(),
                p.model->unshared_intermediate_bytes(), a.get("precision", "fp32").c_str());
    if (err)
      std::printf(", \"error_samples\": %d, \"max_abs_err\": %.6g, \"max_rel_err\": %.6g, \"top1_agree\": %d, "
                  "\"top1_total\": %d", err->samples, err->max_abs, err->max_rel, err->top1_agree, err->top1_total);
    std::printf("}\n");
  } else {
    std::printf("%s: compile %.1f ms, %d kernels, planned intermediates %.2f MB (%.2f MB without sharing)\n",
                a.model.c_str(), p.model->compile_ms(), p.model->num_kernels(), p.model->intermediate_bytes() / 1e6,
                p.model->unshared_intermediate_bytes() / 1e6);
    std::printf("run (%d iters, %d warm-up, %d thread%s): median %.3f ms, min %.3f ms, mean %.3f ms, max %.3f ms\n",
                iters, warmup, p.opts.threads, p.opts.threads > 1 ? "s" : "", median, s.front(), mean, s.back());
    if (err) {
      std::printf("%s vs fp32 on %d input%s: max abs error %.3g, max rel error %.3g", a.get("precision").c_str(),
                  err->samples, err->samples > 1 ? "s" : "", err->max_abs, err->max_rel);
      if (err->top1_total) std::printf(", top-1 agreement %d/%d", err->top1_agree, err->top1_total);
      std::printf("\n");
    }
  }
  return 0;
}

int cmd_ops(int argc, char** argv) {
  for (auto& n : supported_ops()) std::printf("%s\n", n.c_str());
  return 0;
}

int cmd_info(int argc, char** argv) {
  Args a = parse(argc, argv, {{"shape", true}, {"help", false}});
  if (a.has("help")) { std::cout << kInfoHelp; return 0; }
  if (a.model.empty()) fail("no model given (see kiln info --help)");
  ModelSummary s = summarize_model(a.model, parse_shapes(a.flags.count("shape") ? a.flags.at("shape") : std::vector<std::string>{}));
  std::printf("model: %s (opset %d)\ninputs:\n", a.model.c_str(), s.opset);
  for (auto& i : s.inputs) std::printf("  %s: %s%s\n", i.name.c_str(), dtype_name(i.dtype), shape_str(i.shape).c_str());
  std::printf("outputs:\n");
  for (auto& o : s.outputs)
    std::printf("  %s: %s%s\n", o.name.c_str(), o.shape.empty() && !s.typed ? "?" : dtype_name(o.dtype),
                s.typed ? shape_str(o.shape).c_str() : "");
  std::printf("operators (%lld nodes):\n", (long long)s.num_nodes);
  for (auto& kv : s.op_counts) std::printf("  %-24s %lld\n", kv.first.c_str(), (long long)kv.second);
  std::printf("parameters: %lld\n", (long long)s.parameters);
  if (s.typed) std::printf("FLOPs (estimate): %.4g\n", s.flops);
  else std::printf("FLOPs (estimate): unknown (%s)\n", s.type_error.c_str());
  if (s.unsupported.empty()) std::printf("unsupported operators: none\n");
  else {
    std::printf("unsupported operators:\n");
    for (auto& u : s.unsupported) std::printf("  %s\n", u.c_str());
  }
  return 0;
}

}  // namespace kiln::cli
