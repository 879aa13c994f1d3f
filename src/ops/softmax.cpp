// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2D at `axis`
// (default 1), so the normalization runs over all dimensions from `axis` on; from opset 13 it
// runs over the single dimension `axis` (default -1).
#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using tir::IterVar;
using tir::ReduceOp;


Span softmax_span(OpContext& ctx, const Tensor& x) {
  bool coerce_2d = ctx.opset() < 13;
  int64_t axis = ctx.axis(ctx.attr_int("axis", coerce_2d ? 1 : -1), x.ndim());
  Span s{x.shape(), std::vector<bool>(x.ndim(), false)};
  for (int64_t d = axis; d < (coerce_2d ? x.ndim() : axis + 1); ++d) s.spanned[d] = true;
  return s;
}

// Softmax (log_space false) or LogSoftmax, shifted by the group maximum for stability.
Converter softmax(bool log_space) {
  return [=](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x_in = ctx.input(0);
    check_float(ctx, x_in);
    // 16-bit inputs are computed in f32 (the sum of exponentials needs the precision) and
    // rounded once at the end.
    DType in_t = x_in.dtype(), compute_t = (in_t == DType::F16 || in_t == DType::BF16) ? DType::F32 : in_t;
    Tensor x = tir::compute(x_in.shape(), [&](const std::vector<Var>& i) {
      Expr v = x_in(i);
      return compute_t == in_t ? v : tir::cast(compute_t, v);
    }, ctx.out_name() + "_x");
    Span s = softmax_span(ctx, x);
    Tensor m = s.fold(ReduceOp::Max, [&](const std::vector<Expr>& i, const std::vector<Var>&) { return x(i); },
                      ctx.out_name() + "_max");
    if (log_space) {
      Tensor sum = s.fold(ReduceOp::Sum, [&](const std::vector<Expr>& i, const std::vector<Var>& g) {
        return tir::exp(x(i) - m(g));
      }, ctx.out_name() + "_sum");
      return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
        Expr y = x(i) - m(s.group_of(i)) - tir::log(sum(s.group_of(i)));
        return compute_t == in_t ? y : tir::cast(in_t, y);
      }, ctx.out_name())};
    }
    // The exponentials once, stored: the sum and the quotient both read them (an elementwise
    // stage that vectorizes, instead of exp inside the sum's loop and again in the output).
    Tensor e = tir::compute_materialized(x.shape(), [&](const std::vector<Var>& i) {
      return tir::exp(x(i) - m(s.group_of(i)));
    }, ctx.out_name() + "_exp");
    Tensor sum = s.fold(ReduceOp::Sum, [&](const std::vector<Expr>& i, const std::vector<Var>&) { return e(i); },
                        ctx.out_name() + "_sum");
    return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      Expr y = e(i) / sum(s.group_of(i));
      return compute_t == in_t ? y : tir::cast(in_t, y);
    }, ctx.out_name())};
  };
}

// Hardmax: 1 at the first position (row-major within the group) holding the group maximum.
std::vector<Tensor> hardmax(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  Span s = softmax_span(ctx, x);
  int64_t group_size = 1;
  for (size_t d = 0; d < s.shape.size(); ++d)
    if (s.spanned[d]) group_size *= s.shape[d];
  Tensor m = s.fold(ReduceOp::Max, [&](const std::vector<Expr>& i, const std::vector<Var>&) { return x(i); },
                    ctx.out_name() + "_max");
  Tensor first = s.fold(ReduceOp::Min, [&](const std::vector<Expr>& i, const std::vector<Var>& g) {
    Expr v = x(i);
    // A NaN maximum (max propagates NaN) marks the first NaN, as numpy's argmax.
    Expr hit = tir::eq(v, m(g));
    if (dtype_is_float(v.dtype())) hit = hit || tir::unary(tir::UnOp::IsNaN, v);
    return tir::select(hit, s.position(i), Expr(group_size));
  }, ctx.out_name() + "_first");
  return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    Expr hit = tir::eq(s.position(as_exprs(i)), first(s.group_of(i)));
    return tir::select(hit, tir::make_const(x.dtype(), 1), tir::make_const(x.dtype(), 0));
  }, ctx.out_name())};
}

}  // namespace

void register_softmax(Registry& r) {
  r.add("Softmax", softmax(false));
  r.add("LogSoftmax", softmax(true));
  r.add("Hardmax", hardmax);
}

}  // namespace kiln::ops
