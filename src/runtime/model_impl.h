// The compiled model: generated kernels, the buffers they use, and the order to call them.
#pragma once
#include "codegen/jit.h"
#include "kiln/kiln.h"
#include "runtime/thread_pool.h"

namespace kiln {

struct BufferSlot {
  enum class Kind { Input, Output, Constant, Temp };
  std::string name;
  DType dtype;
  Shape shape;
  Kind kind = Kind::Temp;
  int io_index = -1;                          // graph input / output position
  std::shared_ptr<const HostTensor> constant;  // Kind::Constant
  size_t arena_offset = 0;                     // Kind::Temp: place in the per-run arena
  // Kind::Output: zeroed before each run, because a host operator writes it (a generated
  // kernel writes every element of its output, so those are not cleared).
  bool zero_fill = false;
  size_t bytes() const { return size_t(shape_numel(shape)) * dtype_bytes(dtype); }
};

struct Step {
  codegen::KernelFn fn = nullptr;          // generated kernel, or
  std::function<void(void**)> host;        // host operator (ops/host_ops.cpp)
  std::string kernel;  // symbol name
  std::string node;    // node label, for errors and profiles
  std::vector<int> args;  // buffer slots, kernel parameter order
  int64_t flops = 0;      // static estimate (tir/cost.h), for profiles
  int64_t bytes = 0;      // sizes of its arguments
};

struct Model::Impl {
  std::unique_ptr<codegen::JitLibrary> lib;
  std::vector<BufferSlot> slots;
  std::vector<Step> steps;
  std::vector<int> input_slots;   // per graph input
  std::vector<int> output_slots;  // per graph output
  std::vector<TensorInfo> inputs, outputs;
  std::map<int, HostTensor> specialized;  // graph input index -> value the model was built for
  std::vector<PassTiming> timings;
  size_t arena_bytes = 0;     // planned peak of intermediates
  size_t unshared_bytes = 0;  // the same without sharing
  double compile_ms = 0;
  int threads = 1;
  std::unique_ptr<ThreadPool> pool;  // workers for parallel loops, shared by concurrent runs
};

}  // namespace kiln
