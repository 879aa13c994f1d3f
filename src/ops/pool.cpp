// Pooling: MaxPool (with the Indices output), AveragePool, LpPool, their Global* forms and
// MaxUnpool. Every pool is a reduction over the kernel window of an N, C, D1..Dn input
// (the global forms use a window covering the whole spatial extent), followed where needed by
// an elementwise stage (average divisor, p-th root, index encoding).
#include "ops/nn_common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using tir::ReduceOp;

void check_pool_input(const OpContext& ctx, const Tensor& x) {
  if (x.ndim() < 3) ctx.error("input must be N, C, D1.. (rank >= 3), got ", shape_str(x.shape()));
}

Window pool_window(const OpContext& ctx, const Tensor& x) {
  check_pool_input(ctx, x);
  if (!ctx.has_attr("kernel_shape")) ctx.error("attribute 'kernel_shape' is required");
  return sliding_window(ctx, spatial_shape(x), ctx.attr_ints("kernel_shape"), ctx.attr_int("ceil_mode", 0) != 0);
}

// The window of a Global* pool: the whole spatial extent, one output position.
Window global_window(const OpContext& ctx, const Tensor& x) {
  check_pool_input(ctx, x);
  size_t n = size_t(x.ndim() - 2);
  Window w;
  w.in = w.kernel = spatial_shape(x);
  w.strides = w.dilations = w.out = std::vector<int64_t>(n, 1);
  w.pad_begin = w.pad_end = std::vector<int64_t>(n, 0);
  return w;
}

Shape pooled_shape(const Tensor& x, const Window& w) {
  Shape out{x.dim(0), x.dim(1)};
  out.insert(out.end(), w.out.begin(), w.out.end());
  return out;
}

std::vector<tir::IterVar> window_axes(const Window& w, const std::string& name) {
  std::vector<tir::IterVar> axes;
  for (int d = 0; d < w.rank(); ++d) axes.push_back(tir::reduce_axis(w.kernel[d], name + "_rk" + std::to_string(d)));
  return axes;
}

std::vector<Expr> spatial_index(const std::vector<Var>& i) { return std::vector<Expr>(i.begin() + 2, i.end()); }

// out[n, c, o] = op over the window of o of value(x element); padding contributes `outside`.
Tensor window_reduce(const Tensor& x, const Window& w, ReduceOp op, const std::function<Expr(Expr)>& value,
                     const Expr& outside, const std::string& name) {
  return tir::compute(pooled_shape(x, w), [&](const std::vector<Var>& i) {
    std::vector<tir::IterVar> axes = window_axes(w, name);
    Expr v = window_read(x, i[0], i[1], w, spatial_index(i), axis_vars(axes), value, outside);
    return tir::reduce(op, v, axes);
  }, name);
}

// ---- MaxPool ------------------------------------------------------------------------------

// Flat index into the input of the first window element equal to the maximum, as MaxPool's
// Indices output: (n*C + c) * plane + position in the n, c plane, the position row-major, or
// column-major (first spatial dimension fastest) with storage_order 1.
Tensor argmax_indices(const OpContext& ctx, const Tensor& x, const Window& w, const Tensor& max) {
  bool column_major = ctx.attr_int("storage_order", 0) != 0;
  Shape out = pooled_shape(x, w);
  int64_t plane = shape_numel(w.in);
  // First (row-major) position of the maximum in the plane; row-major window order and
  // row-major position order agree, so the minimum position is the first in window order.
  Tensor pos = tir::compute(out, [&](const std::vector<Var>& i) {
    std::vector<tir::IterVar> axes = window_axes(w, ctx.out_name(1) + "_pos");
    std::vector<Expr> o = spatial_index(i), k = axis_vars(axes);
    Expr flat = 0;
    for (int d = 0; d < w.rank(); ++d) flat = flat * w.in[d] + w.input_coord(d, o[d], k[d]);
    Expr value = window_read(x, i[0], i[1], w, o, k, [](Expr e) { return e; }, tir::min_value(x.dtype()));
    Expr hit = window_inside(w, o, k) && tir::eq(value, max(i));
    return tir::reduce_min(tir::select(hit, flat, tir::max_value(DType::I64)), axes);
  }, ctx.out_name(1) + "_pos");
  return tir::compute(out, [&](const std::vector<Var>& i) {
    Expr p = pos(i);
    if (column_major) {
      std::vector<Expr> coords(w.rank());
      Expr rest = p;
      for (int d = w.rank() - 1; d >= 0; --d) {
        coords[d] = floormod(rest, w.in[d]);
        rest = floordiv(rest, w.in[d]);
      }
      p = 0;
      for (int d = w.rank() - 1; d >= 0; --d) p = p * w.in[d] + coords[d];
    }
    return (Expr(i[0]) * x.dim(1) + i[1]) * plane + p;
  }, ctx.out_name(1));
}

std::vector<Tensor> max_pool(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  Window w = pool_window(ctx, x);
  Tensor max = window_reduce(x, w, ReduceOp::Max, [](Expr e) { return e; }, tir::min_value(x.dtype()), ctx.out_name());
  return {max, argmax_indices(ctx, x, w, max)};
}

// ---- AveragePool ----------------------------------------------------------------------------

// Number of window offsets k in [0, K) of output position o whose coordinate lies in [lo, hi).
Expr offsets_in_range(const Window& w, int d, const Expr& o, int64_t lo, int64_t hi) {
  Expr base = o * w.strides[d] - w.pad_begin[d];
  Expr first = tir::max(0, -floordiv(base - lo, w.dilations[d]));  // ceil((lo - base) / dilation)
  Expr last = tir::min(w.kernel[d] - 1, floordiv(hi - 1 - base, w.dilations[d]));
  return tir::max(0, last - first + 1);
}

// Divisor of the average at output o: the window positions inside the input, or with
// count_include_pad inside the padded input (positions past the end padding, which ceil_mode
// can create, never count).
Expr average_divisor(const Window& w, const std::vector<Expr>& o, bool count_pad) {
  Expr count = 1;
  for (int d = 0; d < w.rank(); ++d) {
    int64_t lo = count_pad ? -w.pad_begin[d] : 0, hi = w.in[d] + (count_pad ? w.pad_end[d] : 0);
    bool whole = !w.may_underflow(d) && !w.may_overflow(d);
    count = count * (whole ? Expr(w.kernel[d]) : offsets_in_range(w, d, o[d], lo, hi));
  }
  return count;
}

Tensor average(const OpContext& ctx, const Tensor& x, const Window& w, bool count_pad) {
  DType acc = accum_dtype(x.dtype());
  Tensor sum = window_reduce(x, w, ReduceOp::Sum, [&](Expr e) { return cast_if_needed(acc, e); },
                             tir::make_const(acc, 0), ctx.out_name() + "_sum");
  return tir::compute(sum.shape(), [&](const std::vector<Var>& i) {
    Expr divisor = tir::cast(acc, average_divisor(w, spatial_index(i), count_pad));
    return cast_if_needed(x.dtype(), sum(i) / divisor);
  }, ctx.out_name());
}

std::vector<Tensor> average_pool(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  return {average(ctx, x, pool_window(ctx, x), ctx.attr_int("count_include_pad", 0) != 0)};
}

// ---- LpPool ---------------------------------------------------------------------------------

// (sum over the window of |x|^p)^(1/p); padding contributes 0.
Tensor lp_norm(const OpContext& ctx, const Tensor& x, const Window& w) {
  check_float(ctx, x);
  double p = ctx.attr_float("p", 2.0);
  if (p <= 0) ctx.error("p must be positive");
  DType acc = accum_dtype(x.dtype());
  Tensor sum = window_reduce(x, w, ReduceOp::Sum, [&](Expr e) {
    Expr a = tir::abs(cast_if_needed(acc, e));
    return p == 1 ? a : p == 2 ? a * a : tir::pow(a, tir::make_const(acc, p));
  }, tir::make_const(acc, 0), ctx.out_name() + "_sum");
  return tir::compute(sum.shape(), [&](const std::vector<Var>& i) {
    Expr s = sum(i);
    Expr r = p == 1 ? s : p == 2 ? tir::sqrt(s) : tir::pow(s, tir::make_const(acc, 1.0 / p));
    return cast_if_needed(x.dtype(), r);
  }, ctx.out_name());
}

// ---- MaxUnpool ------------------------------------------------------------------------------

// MaxUnpool(x, indices, output_shape?): y is zero except y.flat[indices[j]] = x[j], the flat
// indices addressing the pooling input shape that kernel, strides and pads imply; a larger
// output_shape extends that with zeros at the end of each axis (as onnx's reference does).
// Written as a gather: position p can only receive a value from the pooled positions whose
// window covers p, at most ceil(kernel / stride) per axis, so each output element tests those
// candidates' indices rather than scattering (this assumes the indices come from a MaxPool
// with the same kernel, strides and pads, which is what the operator is defined for).
struct Unpool {
  std::vector<int64_t> kernel, strides, pads;
  Shape inferred;                 // N, C and the pooling input's spatial extents
  std::vector<int64_t> reach;     // candidates per axis: ceil(kernel / stride)
  int rank() const { return int(kernel.size()); }
  // Pooled coordinate of candidate r for output coordinate p along axis d.
  Expr pooled(int d, const Expr& p, const Expr& r) const { return floordiv(p + pads[d], strides[d]) - r; }
};

Unpool unpool_geometry(const OpContext& ctx, const Tensor& x) {
  int rank = x.ndim() - 2;
  Unpool u;
  u.kernel = ctx.attr_ints("kernel_shape");
  u.strides = ctx.attr_ints("strides", std::vector<int64_t>(rank, 1));
  u.pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * rank, 0));
  if (int(u.kernel.size()) != rank || int(u.strides.size()) != rank || int(u.pads.size()) != 2 * rank)
    ctx.error("kernel_shape, strides and pads must match the ", rank, " spatial axes");
  u.inferred = {x.dim(0), x.dim(1)};
  for (int d = 0; d < rank; ++d) {
    u.inferred.push_back((x.dim(2 + d) - 1) * u.strides[d] + u.kernel[d] - u.pads[d] - u.pads[rank + d]);
    u.reach.push_back((u.kernel[d] + u.strides[d] - 1) / u.strides[d]);
  }
  return u;
}

std::vector<Tensor> max_unpool(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  check_pool_input(ctx, x);
  if (indices.shape() != x.shape()) ctx.error("indices must have the shape of the input");
  Unpool u = unpool_geometry(ctx, x);
  int rank = u.rank();
  Shape out = u.inferred;
  if (ctx.has_input(2)) {
    out = ctx.required_ints(2, "output_shape");
    if (out.size() != u.inferred.size()) ctx.error("output_shape must have rank ", x.ndim());
    for (size_t d = 0; d < out.size(); ++d)
      if (out[d] < u.inferred[d] || (d < 2 && out[d] != u.inferred[d]))
        ctx.error("output_shape ", shape_str(out), " is smaller than the unpooled shape ", shape_str(u.inferred));
  }
  int64_t plane = shape_numel(Shape(u.inferred.begin() + 2, u.inferred.end()));
  // x index of candidate r (clamped into bounds) and whether it is a real pooled position.
  auto candidate = [&](const std::vector<Var>& p, const std::vector<Expr>& r, Expr* valid) {
    std::vector<Expr> xi{p[0], p[1]};
    for (int d = 0; d < rank; ++d) {
      Expr q = u.pooled(d, p[2 + d], r[d]);
      Expr in = tir::ge(q, 0) && tir::lt(q, x.dim(2 + d));
      *valid = valid->defined() ? (*valid && in) : in;
      xi.push_back(tir::max(0, tir::min(x.dim(2 + d) - 1, q)));
    }
    return xi;
  };

  // Number (row-major over the candidates) of the candidate whose index is p, or -1.
  Tensor source = tir::compute(u.inferred, [&](const std::vector<Var>& p) {
    std::vector<tir::IterVar> r;
    for (int d = 0; d < rank; ++d) r.push_back(tir::reduce_axis(u.reach[d], ctx.out_name() + "_rc" + std::to_string(d)));
    Expr valid, flat = 0, number = 0;
    std::vector<Expr> xi = candidate(p, axis_vars(r), &valid);
    for (int d = 0; d < rank; ++d) {
      flat = flat * u.inferred[2 + d] + p[2 + d];
      number = number * u.reach[d] + r[d].var;
    }
    Expr target = (Expr(p[0]) * u.inferred[1] + p[1]) * plane + flat;
    Expr hit = valid && tir::eq(cast_if_needed(DType::I64, indices(xi)), target);
    return tir::reduce_max(tir::select(hit, number, Expr(-1)), r);
  }, ctx.out_name() + "_src");

  return {tir::compute(out, [&](const std::vector<Var>& p) {
    Expr inside = tir::make_int(1, DType::Bool);
    std::vector<Expr> sp{p[0], p[1]};
    for (int d = 0; d < rank; ++d) {
      if (out[2 + d] > u.inferred[2 + d]) inside = inside && tir::lt(p[2 + d], u.inferred[2 + d]);
      sp.push_back(tir::min(Expr(p[2 + d]), u.inferred[2 + d] - 1));
    }
    Expr s = source(sp);
    std::vector<Expr> r(rank);
    Expr rest = tir::max(s, 0);
    for (int d = rank - 1; d >= 0; --d) {
      r[d] = floormod(rest, u.reach[d]);
      rest = floordiv(rest, u.reach[d]);
    }
    Expr valid;
    std::vector<Expr> xi = candidate(p, r, &valid);
    return tir::select(inside && tir::ge(s, 0), x(xi), tir::make_const(x.dtype(), 0));
  }, ctx.out_name())};
}

}  // namespace

void register_pool(Registry& r) {
  r.add("MaxPool", max_pool);
  r.add("AveragePool", average_pool);
  r.add("LpPool", [](OpContext& ctx) -> std::vector<Tensor> {
    return {lp_norm(ctx, ctx.input(0), pool_window(ctx, ctx.input(0)))};
  });
  r.add("GlobalMaxPool", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    return {window_reduce(x, global_window(ctx, x), ReduceOp::Max, [](Expr e) { return e; }, tir::min_value(x.dtype()),
                          ctx.out_name())};
  });
  r.add("GlobalAveragePool", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    check_float(ctx, x);
    return {average(ctx, x, global_window(ctx, x), false)};
  });
  r.add("GlobalLpPool", [](OpContext& ctx) -> std::vector<Tensor> {
    return {lp_norm(ctx, ctx.input(0), global_window(ctx, ctx.input(0)))};
  });
  r.add("MaxUnpool", max_unpool);
}

}  // namespace kiln::ops
