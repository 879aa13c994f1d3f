// kiln's public C++ API: compile an ONNX model once, run it many times.
//
//   kiln::CompileOptions opts;
//   kiln::Model m = kiln::Model::compile_file("resnet50.onnx", opts);
//   std::vector<kiln::HostTensor> out = m.run({input});
//
// Model::run is const and may be called from several threads at once.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/tensor.h"

namespace kiln {

// Arithmetic of the matrix products (MatMul, Gemm, Conv, ConvTranspose). FP32: as the model
// says. BF16: their two data operands are rounded to bfloat16 (weights once, at compile time)
// and products accumulate in f32 with an f32 result, as AMX's tdpbf16ps computes; everything
// else stays f32.
enum class Precision { FP32, BF16 };

struct CompileOptions {
  // Shapes for graph inputs (symbolic dims default to 1 otherwise).
  std::map<std::string, Shape> shapes;
  // Values of graph inputs that decide shapes (a Reshape's target, a TopK's k, ...). The model
  // is specialized on them; run() then checks that the same values are passed.
  std::map<std::string, HostTensor> input_values;
  int threads = 1;
  int opt_level = 2;
  // Print the graph after this pass ("import", "canonicalize", "qdq", "fold", "dce", "final") or "all",
  // and the loop IR of every kernel with "tir".
  std::string dump_ir;
  bool print_timing = false;               // per-pass timing on the log
  // Also write the generated code of every kernel here: ".s" assembly, ".ll" LLVM IR, else an
  // object file (the ahead-of-time path).
  std::string emit_path;
  // The machine the emit_path file is for: "" (this one) or "sapphirerapids" (AVX-512 and
  // AMX; bf16 products are then scheduled on tiles, which run here as loops).
  std::string emit_target;
  std::function<void(const std::string&)> log;  // defaults to stderr
  // Schedule steps per kernel name (as --dump-ir tir prints them), replayed after the default
  // schedule: "split(x, 8); vectorize(x_i); parallel(x_o)" (see src/tir/schedule_steps.h).
  // A kernel given steps gets no automatic parallel loops.
  std::map<std::string, std::string> schedules;
  Precision precision = Precision::FP32;
  // Schedule bf16 products (with BF16) and 8-bit products (quantized models) for AMX tiles
  // even on a CPU without AMX, where the tile products run as plain loops (slowly). Tests
  // the AMX path's scheduling on any machine.
  bool emulate_amx = false;
  // Channel-blocked layout (NCHW16c) for chains of f32 convolutions and the ops between them
  // (src/ops/blocked_layout.h); false keeps every tensor in the model's plain layout.
  bool blocked_layout = true;
  // 3x3 stride-1 convolutions in the blocked layout by Winograd's F(2x2, 3x3) (fewer multiplies,
  // src/ops/winograd.cpp); false computes them directly.
  bool winograd = true;
};

// The fp32 FMA throughput one core of this machine reaches, in GFLOP/s, measured once per
// process (about 50 ms) with the widest vectors the CPU has: the 100% of profile tables.
double measured_fp32_peak_gflops();

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
};

struct PassTiming {
  std::string pass;
  double ms;
};

class Model {
 public:
  static Model compile_file(const std::string& path, const CompileOptions& opts = {});
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  // Inputs in graph-input order; throws kiln::Error on a wrong count, dtype or shape.
  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs) const;

  // Runs `iters` times and returns each kernel's mean time, in call order.
  struct KernelTime {
    std::string kernel, node;
    double ms;                       // mean over the runs
    double last_start_ms, last_ms;   // in the last run: start from its beginning, duration
    int64_t flops = 0;               // floating-point operations per run (static count)
    int64_t bytes = 0;               // bytes of its arguments (the traffic it cannot avoid)
  };
  std::vector<KernelTime> profile(const std::vector<HostTensor>& inputs, int iters = 5) const;

  const std::vector<PassTiming>& timings() const;
  double compile_ms() const;
  int num_kernels() const;
  // Planned peak memory of intermediates (one arena per run, buffers with disjoint lifetimes
  // sharing space), and what they would take without sharing.
  size_t intermediate_bytes() const;
  size_t unshared_intermediate_bytes() const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::vector<HostTensor> run_steps(const std::vector<HostTensor>& inputs, std::vector<double>* step_ms) const;
  std::unique_ptr<Impl> impl_;
};

// Operator types kiln can compile.
std::vector<std::string> supported_ops();

}  // namespace kiln

namespace kiln {

// Graph inputs of a model file (names, types, shapes after `shapes` overrides), without compiling.
std::vector<TensorInfo> read_model_inputs(const std::string& path,
                                          const std::map<std::string, Shape>& shapes = {});

// ONNX TensorProto files (test_data_set_N/input_K.pb layout).
HostTensor load_tensor(const std::string& path);
void save_tensor(const std::string& path, const HostTensor& t, const std::string& name = "");

}  // namespace kiln

namespace kiln {

// What `kiln info` prints. Types and FLOPs need the model to be supported; when it is not,
// `typed` is false and `type_error` says why.
struct ModelSummary {
  int opset = 0;
  std::vector<TensorInfo> inputs, outputs;
  std::map<std::string, int64_t> op_counts;
  int64_t num_nodes = 0;
  int64_t parameters = 0;  // elements in initializers
  double flops = 0;
  bool typed = false;
  std::string type_error;
  std::vector<std::string> unsupported;  // "Op (nodes ...)"
};
ModelSummary summarize_model(const std::string& path, const std::map<std::string, Shape>& shapes = {});

}  // namespace kiln
