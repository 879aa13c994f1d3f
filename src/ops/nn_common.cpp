#include "ops/nn_common.h"

#include <cmath>

#include "graph/precision.h"

namespace kiln::ops {

DType accum_dtype(DType t) { return t == DType::F16 || t == DType::BF16 ? DType::F32 : t; }

DType product_dtype(const OpContext& ctx, DType t) {
  return ctx.attr_int(graph::kF32ResultAttr, 0) ? accum_dtype(t) : t;
}

Expr cast_if_needed(DType t, const Expr& e) { return e.dtype() == t ? e : tir::cast(t, e); }

Tensor cast_stage(const Tensor& acc, DType t, const std::string& name) {
  if (acc.dtype() == t) return acc;
  return tir::compute(acc.shape(), [&](const std::vector<Var>& i) { return tir::cast(t, acc(i)); }, name);
}

std::vector<Expr> axis_vars(const std::vector<tir::IterVar>& axes) {
  std::vector<Expr> v;
  for (auto& a : axes) v.push_back(a.var);
  return v;
}

Shape spatial_shape(const Tensor& t) { return Shape(t.shape().begin() + 2, t.shape().end()); }

std::vector<int64_t> spatial_attr(const OpContext& ctx, const char* name, size_t count, int64_t def) {
  std::vector<int64_t> v = ctx.attr_ints(name, std::vector<int64_t>(count, def));
  if (v.size() != count) ctx.error("attribute '", name, "' has ", v.size(), " values, expected ", count);
  return v;
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Window sliding_window(const OpContext& ctx, const Shape& in_spatial, const std::vector<int64_t>& kernel,
                      bool ceil_mode) {
  size_t n = in_spatial.size();
  Window w;
  w.in = in_spatial;
  w.kernel = kernel;
  if (kernel.size() != n) ctx.error("kernel has ", kernel.size(), " dimensions, the input ", n, " spatial ones");
  w.strides = spatial_attr(ctx, "strides", n, 1);
  w.dilations = spatial_attr(ctx, "dilations", n, 1);
  for (size_t d = 0; d < n; ++d)
    if (w.strides[d] < 1 || w.dilations[d] < 1 || kernel[d] < 1) ctx.error("kernel, strides and dilations must be positive");
  std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  w.out.resize(n);
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    w.pad_begin.resize(n);
    w.pad_end.resize(n);
    for (size_t d = 0; d < n; ++d) {
      w.out[d] = ceil_div(in_spatial[d], w.strides[d]);
      int64_t total = std::max<int64_t>(0, (w.out[d] - 1) * w.strides[d] + w.dilated_kernel(int(d)) - in_spatial[d]);
      int64_t small = total / 2, large = total - small;
      w.pad_begin[d] = auto_pad == "SAME_UPPER" ? small : large;
      w.pad_end[d] = total - w.pad_begin[d];
    }
    return w;
  }
  if (auto_pad == "VALID") {
    w.pad_begin.assign(n, 0);
    w.pad_end.assign(n, 0);
  } else if (auto_pad == "NOTSET" || auto_pad.empty()) {
    std::vector<int64_t> pads = spatial_attr(ctx, "pads", 2 * n, 0);
    w.pad_begin.assign(pads.begin(), pads.begin() + n);
    w.pad_end.assign(pads.begin() + n, pads.end());
  } else {
    ctx.error("auto_pad '", auto_pad, "' is not supported");
  }
  for (size_t d = 0; d < n; ++d) {
    int64_t span = in_spatial[d] + w.pad_begin[d] + w.pad_end[d] - w.dilated_kernel(int(d));
    if (span < 0) ctx.error("the window is larger than the padded input along spatial axis ", d);
    w.out[d] = (ceil_mode ? ceil_div(span, w.strides[d]) : span / w.strides[d]) + 1;
    // A window starting inside the end padding sees no input at all; it is not produced.
    if (ceil_mode && (w.out[d] - 1) * w.strides[d] >= in_spatial[d] + w.pad_begin[d]) --w.out[d];
  }
  return w;
}

Expr window_inside(const Window& w, const std::vector<Expr>& out, const std::vector<Expr>& k) {
  Expr inside;
  auto add = [&](Expr c) { inside = inside.defined() ? (inside && c) : c; };
  for (int d = 0; d < w.rank(); ++d) {
    Expr x = w.input_coord(d, out[d], k[d]);
    if (w.may_underflow(d)) add(tir::ge(x, 0));
    if (w.may_overflow(d)) add(tir::lt(x, w.in[d]));
  }
  return inside.defined() ? inside : tir::make_int(1, DType::Bool);
}

Expr window_read(const Tensor& x, const Expr& n, const Expr& c, const Window& w,
                 const std::vector<Expr>& out, const std::vector<Expr>& k,
                 const std::function<Expr(Expr)>& transform, const Expr& outside) {
  std::vector<Expr> idx{n, c};
  bool guarded = false;
  for (int d = 0; d < w.rank(); ++d) {
    Expr coord = w.input_coord(d, out[d], k[d]);
    if (w.may_underflow(d)) coord = tir::max(coord, 0);
    if (w.may_overflow(d)) coord = tir::min(coord, w.in[d] - 1);
    guarded |= w.may_underflow(d) || w.may_overflow(d);
    idx.push_back(coord);
  }
  Expr v = transform(x(idx));
  return guarded ? tir::select(window_inside(w, out, k), v, outside) : v;
}

// x[n, c, at - pad_begin] at coordinates `at` of the padded input: `pad` in the padding (a
// quantized input's zero point, so the padding adds nothing to the sum), else 0.
Expr padded_read(const Tensor& x, const Window& win, const Expr& n, const Expr& c, const std::vector<Expr>& at,
                 const Expr& pad) {
  std::vector<Expr> idx{n, c};
  Expr inside = tir::make_int(1, DType::Bool);
  for (int d = 0; d < win.rank(); ++d) {
    Expr coord = at[d] - win.pad_begin[d];
    inside = inside && tir::ge(coord, 0) && tir::lt(coord, win.in[d]);
    idx.push_back(tir::max(0, tir::min(win.in[d] - 1, coord)));
  }
  return tir::select(inside, x(idx), pad.defined() ? pad : tir::make_const(x.dtype(), 0));
}

// x with its padding stored: [N, C, in + pad_begin + pad_end ...]. Returns x itself when
// no window reaches outside it.
Tensor pad_input(const Tensor& x, const Window& win, const Expr& pad, const std::string& name) {
  bool any = false;
  for (int d = 0; d < win.rank(); ++d) any |= win.may_underflow(d) || win.may_overflow(d);
  if (!any) return x;
  Shape shape{x.dim(0), x.dim(1)};
  for (int d = 0; d < win.rank(); ++d) shape.push_back(win.in[d] + win.pad_begin[d] + win.pad_end[d]);
  return tir::compute_materialized(shape, [&](const std::vector<Var>& i) {
    return padded_read(x, win, i[0], i[1], std::vector<Expr>(i.begin() + 2, i.end()), pad);
  }, name);
}

Expr quant_param(const OpContext& ctx, const Tensor& p, const Expr& index) {
  if (shape_numel(p.shape()) == 1) return p(std::vector<Expr>(p.ndim(), Expr(0)));
  if (p.ndim() != 1) ctx.error("quantization parameter '", p.name(), "' must be a scalar or 1-D, got shape ", shape_str(p.shape()));
  return p(index);
}

Expr zero_point_i32(OpContext& ctx, int i, const Expr& index) {
  if (!ctx.has_input(i)) return tir::make_int(0, DType::I32);
  // Symmetric quantization (all zero points 0, as for most weights): no subtraction at all.
  if (const HostTensor* v = ctx.value(i)) {
    bool zero = true;
    for (int64_t k = 0; k < v->numel() && zero; ++k) zero = v->get_f64(k) == 0;
    if (zero) return tir::make_int(0, DType::I32);
  }
  return cast_if_needed(DType::I32, quant_param(ctx, ctx.input(i), index));
}

Expr subtract_zero_point(const Expr& v, const Expr& zero_point) {
  int64_t z;
  return tir::is_const_int(zero_point, &z) && z == 0 ? v : v - zero_point;
}

Expr quantize(const Expr& v, const Expr& zero_point, DType to) {
  Expr q = tir::unary(tir::UnOp::Round, v) + cast_if_needed(v.dtype(), zero_point);
  q = tir::max(q, tir::cast(v.dtype(), tir::min_value(to)));
  q = tir::min(q, tir::cast(v.dtype(), tir::max_value(to)));
  return tir::cast(to, q);
}

}  // namespace kiln::ops
