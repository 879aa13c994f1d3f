// Model::run: binds inputs, outputs and one scratch arena per call (from the calling thread's
// scratch cache), then calls the kernels in order. Nothing is shared between calls except
// read-only constants, so calls from different threads may overlap.
#include <chrono>

#include "codegen/scratch.h"
#include "runtime/model_impl.h"

namespace kiln {

namespace {
constexpr size_t kAlign = 64;
}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const std::vector<TensorInfo>& Model::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Model::outputs() const { return impl_->outputs; }
const std::vector<PassTiming>& Model::timings() const { return impl_->timings; }
double Model::compile_ms() const { return impl_->compile_ms; }
int Model::num_kernels() const { return int(impl_->steps.size()); }
size_t Model::intermediate_bytes() const { return impl_->arena_bytes; }
size_t Model::unshared_intermediate_bytes() const { return impl_->unshared_bytes; }

std::vector<HostTensor> Model::run(const std::vector<HostTensor>& inputs) const { return run_steps(inputs, nullptr); }

std::vector<Model::KernelTime> Model::profile(const std::vector<HostTensor>& inputs, int iters) const {
  size_t n = impl_->steps.size();
  std::vector<double> ms(n, 0.0), last(n, 0.0);
  for (int i = 0; i + 1 < iters; ++i) run_steps(inputs, &ms);
  run_steps(inputs, &last);
  std::vector<KernelTime> r;
  double start = 0;
  for (size_t k = 0; k < n; ++k) {
    const Step& st = impl_->steps[k];
    r.push_back({st.kernel, st.node, (ms[k] + last[k]) / std::max(1, iters), start, last[k], st.flops, st.bytes});
    start += last[k];
  }
  return r;
}

std::vector<HostTensor> Model::run_steps(const std::vector<HostTensor>& inputs, std::vector<double>* step_ms) const {
  const Impl& m = *impl_;
  if (inputs.size() != m.inputs.size())
    fail("the model takes ", m.inputs.size(), " inputs, got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorInfo& want = m.inputs[i];
    if (inputs[i].dtype != want.dtype)
      fail("input '", want.name, "': expected ", dtype_name(want.dtype), ", got ", dtype_name(inputs[i].dtype));
    if (inputs[i].shape != want.shape)
      fail("input '", want.name, "': expected shape ", shape_str(want.shape), ", got ", shape_str(inputs[i].shape),
           " (compile with --shape ", want.name, "=... for other shapes)");
    if (inputs[i].bytes.size() != inputs[i].numel() * size_t(dtype_bytes(inputs[i].dtype)))
      fail("input '", want.name, "': data size does not match its shape");
    auto sp = m.specialized.find(int(i));
    if (sp != m.specialized.end() && !sp->second.same_as(inputs[i]))
      fail("input '", want.name, "': the model was compiled for a different value of this input, which decides shapes");
  }

  std::vector<void*> ptrs(m.slots.size(), nullptr);
  std::vector<HostTensor> outputs(m.outputs.size());
  // The arena stays with this thread for its next run (codegen/scratch.h): allocated anew
  // per run, its pages were faulted in and zeroed again every time.
  size_t arena_bytes = m.arena_bytes;
  codegen::ScratchBlock arena{int64_t(arena_bytes)};
  if (arena_bytes && !arena.get()) fail("out of memory allocating ", arena_bytes, " bytes of intermediates");
  static char empty_buffer[kAlign];
  for (size_t i = 0; i < m.slots.size(); ++i) {
    const BufferSlot& s = m.slots[i];
    switch (s.kind) {
      case BufferSlot::Kind::Input: ptrs[i] = const_cast<void*>(inputs[s.io_index].data()); break;
      case BufferSlot::Kind::Constant: ptrs[i] = const_cast<void*>(s.constant->data()); break;
      case BufferSlot::Kind::Output:
        outputs[s.io_index] = s.zero_fill ? HostTensor(s.dtype, s.shape)
                                          : HostTensor(s.dtype, s.shape, HostTensor::Uninitialized{});
        ptrs[i] = outputs[s.io_index].data();
        break;
      case BufferSlot::Kind::Temp:
        ptrs[i] = static_cast<char*>(arena.get()) + s.arena_offset;
        break;
    }
    if (!ptrs[i]) ptrs[i] = empty_buffer;  // zero-sized tensors
  }
  std::vector<void*> args;
  PoolScope pool(m.pool.get());
  for (size_t k = 0; k < m.steps.size(); ++k) {
    const Step& step = m.steps[k];
    args.clear();
    for (int a : step.args) args.push_back(ptrs[a]);
    auto t0 = step_ms ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    if (step.fn) step.fn(args.data());
    else step.host(args.data());
    if (step_ms)
      (*step_ms)[k] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  // Graph outputs that are not computed by a kernel (an input or a constant passed through).
  for (size_t o = 0; o < m.output_slots.size(); ++o) {
    const BufferSlot& s = m.slots[m.output_slots[o]];
    if (s.kind == BufferSlot::Kind::Output && s.io_index == int(o)) continue;
    HostTensor t(s.dtype, s.shape);
    std::memcpy(t.data(), ptrs[m.output_slots[o]], t.bytes.size());
    outputs[o] = std::move(t);
  }
  return outputs;
}

}  // namespace kiln
