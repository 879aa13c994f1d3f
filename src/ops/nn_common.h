// Helpers shared by the neural-network operator families (ops/matmul.cpp, ops/conv.cpp,
// ops/pool.cpp): accumulation types, sliding-window geometry with guarded (padded) reads, and
// the quantization arithmetic of the *Integer / QLinear* operators.
#pragma once
#include "ops/common.h"

namespace kiln::ops {

// Type a sum of `t` values accumulates in: f16/bf16 sums accumulate in f32 (their 8-11 bit
// mantissas lose whole terms otherwise); every other type accumulates in itself.
DType accum_dtype(DType t);
// Type of a matrix product's result: its operands' type `t`, or f32 for a node whose operands
// the compiler narrowed to bf16 (graph/precision.h), which keeps its f32 accumulation.
DType product_dtype(const OpContext& ctx, DType t);
// `e` cast to `t` unless it already has that type.
Expr cast_if_needed(DType t, const Expr& e);
// Stage casting `acc` to `t`, or `acc` itself when it already has that type.
Tensor cast_stage(const Tensor& acc, DType t, const std::string& name);

// Spatial extents D1..Dn of an N, C, D1..Dn tensor.
Shape spatial_shape(const Tensor& t);
// Per-spatial-axis int attribute `name` with `count` values (`def` for each when absent).
std::vector<int64_t> spatial_attr(const OpContext& ctx, const char* name, size_t count, int64_t def);

// The variables of reduce axes, as index expressions.
std::vector<Expr> axis_vars(const std::vector<tir::IterVar>& axes);

// Geometry of a sliding window over the spatial dimensions of an N, C, D1..Dn tensor, as Conv
// and the pooling operators define it (strides, dilations, pads, auto_pad, ceil_mode).
struct Window {
  Shape in;                     // input spatial extents
  std::vector<int64_t> kernel;  // window extents (before dilation)
  std::vector<int64_t> strides, dilations, pad_begin, pad_end;
  Shape out;                    // output spatial extents

  int rank() const { return int(in.size()); }
  int64_t dilated_kernel(int d) const { return (kernel[d] - 1) * dilations[d] + 1; }
  // Input coordinate that output position `o` reads at window offset `k` along dimension d.
  Expr input_coord(int d, const Expr& o, const Expr& k) const {
    return o * strides[d] - pad_begin[d] + k * dilations[d];
  }
  // Whether some window position reads before the start / past the end of dimension d (only
  // those dimensions need a bounds guard).
  bool may_underflow(int d) const { return pad_begin[d] > 0; }
  bool may_overflow(int d) const {
    return (out[d] - 1) * strides[d] - pad_begin[d] + (kernel[d] - 1) * dilations[d] >= in[d];
  }
};

// Reads the attributes strides, dilations, pads and auto_pad (kernel extents are given) and
// derives pads and output extents. `ceil_mode` rounds the output extent up (pooling) but drops
// a last window that would start inside the end padding, as PyTorch and onnx do.
Window sliding_window(const OpContext& ctx, const Shape& in_spatial, const std::vector<int64_t>& kernel,
                      bool ceil_mode = false);

// Value of x (layout N, C, D1..Dn) at batch n, channel c and the window position of output
// `out` at offsets `k`; `outside` where that position lies in the padding. Reads are clamped
// into bounds so the select never pairs with an out-of-bounds load.
Expr window_read(const Tensor& x, const Expr& n, const Expr& c, const Window& w,
                 const std::vector<Expr>& out, const std::vector<Expr>& k,
                 const std::function<Expr(Expr)>& transform, const Expr& outside);
// True where the window position of output `out` at offsets `k` is inside the input.
Expr window_inside(const Window& w, const std::vector<Expr>& out, const std::vector<Expr>& k);
// x[n, c, at - pad_begin] at coordinates `at` of the padded input: `pad` in the padding (a
// quantized input's zero point), else 0.
Expr padded_read(const Tensor& x, const Window& win, const Expr& n, const Expr& c, const std::vector<Expr>& at,
                 const Expr& pad);
// x (N, C, D1..Dn) with its padding stored: [N, C, in + pad_begin + pad_end ...] (`pad` there,
// or 0 when undefined); x itself when no window reaches outside it.
Tensor pad_input(const Tensor& x, const Window& win, const Expr& pad, const std::string& name);

// ---- quantization ----------------------------------------------------------------------
// Quantization parameter (scale or zero point) for the slice `index` along the quantized axis:
// a single-element tensor is per-tensor (index ignored), a 1-D tensor per-axis.
Expr quant_param(const OpContext& ctx, const Tensor& p, const Expr& index);
// Optional zero point input `i` as an i32 expression (0 when absent).
Expr zero_point_i32(OpContext& ctx, int i, const Expr& index);
// `v` - `zero_point`, or `v` itself when the zero point is the constant 0 (symmetric
// quantization: the product then matches integer instructions directly).
Expr subtract_zero_point(const Expr& v, const Expr& zero_point);
// Real value `v` (f32) quantized to `to` (u8/i8/...): round half to even, add the zero point
// and saturate to the type's range.
Expr quantize(const Expr& v, const Expr& zero_point, DType to);

}  // namespace kiln::ops
