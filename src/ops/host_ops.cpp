// Host operators: not index computations, so they run as C++ over whole tensors.
// TopK: a partial sort per slice along the axis (stable: ties keep the lower index first).
#include <algorithm>
#include <numeric>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

template <typename T>
void topk_typed(const TensorView& x, const TensorView& vals, const TensorView& idx, int64_t axis, int64_t k,
                bool largest, bool sorted) {
  const T* in = static_cast<const T*>(x.data);
  T* out_v = static_cast<T*>(vals.data);
  int64_t* out_i = static_cast<int64_t*>(idx.data);
  int64_t n = x.shape[axis], inner = 1, outer = 1;
  for (size_t d = axis + 1; d < x.shape.size(); ++d) inner *= x.shape[d];
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[d];
  std::vector<int64_t> order(n);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* base = in + o * n * inner + i;
      std::iota(order.begin(), order.end(), 0);
      auto before = [&](int64_t a, int64_t b) {
        T va = base[a * inner], vb = base[b * inner];
        if (va != vb) return largest ? va > vb : va < vb;
        return a < b;
      };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      if (!sorted) std::sort(order.begin(), order.begin() + k);
      for (int64_t j = 0; j < k; ++j) {
        int64_t dst = o * k * inner + j * inner + i;
        out_v[dst] = base[order[j] * inner];
        out_i[dst] = order[j];
      }
    }
}

HostPlan topk(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = ctx.axis(ctx.attr_int("axis", -1), x.ndim());
  int64_t k = ctx.opset() < 10 ? ctx.attr_int("k", 0) : ctx.required_ints(1, "K").at(0);
  if (k < 0 || k > x.dim(axis)) ctx.error("k = ", k, " is out of range for axis of size ", x.dim(axis));
  bool largest = ctx.attr_int("largest", 1) != 0, sorted = ctx.attr_int("sorted", 1) != 0;
  Shape out = x.shape();
  out[axis] = k;
  HostPlan p;
  p.outputs = {{x.dtype(), out}, {DType::I64, out}};
  DType t = x.dtype();
  if (t != DType::F32 && t != DType::F64 && t != DType::I32 && t != DType::I64)
    ctx.error("element type ", dtype_name(t), " is not supported");
  p.run = [=](const std::vector<TensorView>& ins, const std::vector<TensorView>& outs) {
    switch (t) {
      case DType::F32: topk_typed<float>(ins[0], outs[0], outs[1], axis, k, largest, sorted); break;
      case DType::F64: topk_typed<double>(ins[0], outs[0], outs[1], axis, k, largest, sorted); break;
      case DType::I32: topk_typed<int32_t>(ins[0], outs[0], outs[1], axis, k, largest, sorted); break;
      default: topk_typed<int64_t>(ins[0], outs[0], outs[1], axis, k, largest, sorted); break;
    }
  };
  return p;
}

}  // namespace

void register_host_ops(Registry& r) { r.add_host("TopK", topk); }

}  // namespace kiln::ops
