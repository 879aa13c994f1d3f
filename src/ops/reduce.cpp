// Reductions (ReduceSum ... ReduceLogSumExp), index reductions (ArgMax, ArgMin) and CumSum.
// Each is a reduction stage over the folded axes, followed where needed by an elementwise stage
// (a reduction must be the whole body of a compute).
#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using tir::IterVar;
using tir::ReduceOp;
using tir::UnOp;

Expr c(const Expr& like, double v) { return tir::make_const(like.dtype(), v); }

// Applies a floating-point function to `e`, going through f64 for integer types (ONNX allows
// ReduceL2 / ReduceLogSum on integers; the result keeps the input type).
Expr via_float(const Expr& e, const std::function<Expr(Expr)>& f) {
  if (dtype_is_float(e.dtype())) return f(e);
  return tir::cast(e.dtype(), f(tir::cast(DType::F64, e)));
}

// Which input dimensions a reduction folds, and how output indices map to input indices.
struct Folding {
  Shape in_shape;
  std::vector<bool> folded;  // per input dimension
  bool keepdims = true;

  Shape out_shape() const {
    Shape s;
    for (size_t d = 0; d < in_shape.size(); ++d) {
      if (!folded[d]) s.push_back(in_shape[d]);
      else if (keepdims) s.push_back(1);
    }
    return s;
  }
  int64_t folded_count() const {
    int64_t n = 1;
    for (size_t d = 0; d < in_shape.size(); ++d)
      if (folded[d]) n *= in_shape[d];
    return n;
  }
  std::vector<IterVar> reduce_vars(const std::string& name) const {
    std::vector<IterVar> rv;
    for (size_t d = 0; d < in_shape.size(); ++d)
      if (folded[d]) rv.push_back(tir::reduce_axis(in_shape[d], name + "_r" + std::to_string(d)));
    return rv;
  }
  // Input index for output index `out`, folded dimensions taking `fold_idx` in order.
  std::vector<Expr> input_index(const std::vector<Var>& out, const std::vector<Expr>& fold_idx) const {
    std::vector<Expr> idx;
    size_t o = 0, f = 0;
    for (size_t d = 0; d < in_shape.size(); ++d) {
      if (folded[d]) {
        idx.push_back(fold_idx[f++]);
        if (keepdims) ++o;
      } else {
        idx.push_back(out[o++]);
      }
    }
    return idx;
  }
};

std::vector<Expr> vars_of(const std::vector<IterVar>& rv) {
  std::vector<Expr> v;
  for (auto& r : rv) v.push_back(r.var);
  return v;
}

// Reduction stage: op over the folded dimensions of `term(x element, output index)`. With no
// folded dimension (noop_with_empty_axes) it is the elementwise term itself.
Tensor fold(const Tensor& x, const Folding& f, ReduceOp op,
            const std::function<Expr(Expr, const std::vector<Var>&)>& term, const std::string& name) {
  return tir::compute(f.out_shape(), [&](const std::vector<Var>& i) {
    std::vector<IterVar> rv = f.reduce_vars(name);
    Expr body = term(x(f.input_index(i, vars_of(rv))), i);
    return rv.empty() ? body : tir::reduce(op, body, rv);
  }, name);
}

Tensor map(const Tensor& t, const std::function<Expr(Expr, const std::vector<Var>&)>& f, const std::string& name) {
  return tir::compute(t.shape(), [&](const std::vector<Var>& i) { return f(t(i), i); }, name);
}

// The axes a Reduce* node folds. Axes moved from attribute to input in opset 13 for ReduceSum
// and in opset 18 for the others; an empty list means all axes unless noop_with_empty_axes.
Folding reduce_folding(OpContext& ctx, const Tensor& x) {
  int axes_input_since = ctx.op_type() == "ReduceSum" ? 13 : 18;
  std::vector<int64_t> axes;
  if (ctx.opset() < axes_input_since) axes = ctx.attr_ints("axes");
  else if (ctx.has_input(1)) axes = ctx.required_ints(1, "axes");
  Folding f{x.shape(), std::vector<bool>(x.ndim(), axes.empty() && !ctx.attr_int("noop_with_empty_axes", 0)),
            ctx.attr_int("keepdims", 1) != 0};
  for (int64_t a : axes) f.folded[ctx.axis(a, x.ndim(), "axes")] = true;
  return f;
}

using Term = std::function<Expr(Expr)>;
using Finish = std::function<Expr(Expr acc, int64_t count)>;

Expr identity(Expr e) { return e; }

// 16-bit floats accumulate in f32: summing many elements in f16 loses most of the result.
bool accumulates_wider(DType t, ReduceOp op) {
  return (t == DType::F16 || t == DType::BF16) && (op == ReduceOp::Sum || op == ReduceOp::Prod);
}

// A Reduce* op: fold `term` of each element with `op`, then `finish` the accumulated value.
Converter reduction(ReduceOp op, Term term = identity, Finish finish = nullptr) {
  return [=](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    Folding f = reduce_folding(ctx, x);
    bool widen = accumulates_wider(x.dtype(), op);
    auto elem = [&](Expr e, const std::vector<Var>&) { return term(widen ? tir::cast(DType::F32, e) : e); };
    if (!finish && !widen) return {fold(x, f, op, elem, ctx.out_name())};
    Tensor acc = fold(x, f, op, elem, ctx.out_name() + "_acc");
    int64_t n = f.folded_count();
    return {map(acc, [&](Expr a, const std::vector<Var>&) {
      Expr r = finish ? finish(a, n) : a;
      return widen ? tir::cast(x.dtype(), r) : r;
    }, ctx.out_name())};
  };
}

// log(sum(exp(x))) computed as max + log(sum(exp(x - max))) so large inputs do not overflow.
std::vector<Tensor> reduce_log_sum_exp(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  Folding f = reduce_folding(ctx, x);
  Tensor m = fold(x, f, ReduceOp::Max, [](Expr e, const std::vector<Var>&) { return e; }, ctx.out_name() + "_max");
  // An infinite max would turn x - max into NaN; shifting by 0 is exact there.
  Tensor shift = map(m, [](Expr v, const std::vector<Var>&) {
    return dtype_is_float(v.dtype()) ? tir::select(tir::unary(UnOp::IsInf, v), c(v, 0), v) : v;
  }, ctx.out_name() + "_shift");
  Tensor s = fold(x, f, ReduceOp::Sum, [&](Expr e, const std::vector<Var>& i) {
    return via_float(e - shift(i), [](Expr v) { return tir::exp(v); });
  }, ctx.out_name() + "_sum");
  return {map(s, [&](Expr v, const std::vector<Var>& i) {
    return via_float(v, [](Expr w) { return tir::log(w); }) + shift(i);
  }, ctx.out_name())};
}

// ArgMax / ArgMin: the extreme value along the axis, then the first (or last) position holding it.
Converter arg_extreme(ReduceOp extreme) {
  return [=](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    int64_t axis = ctx.axis(ctx.attr_int("axis", 0), x.ndim());
    bool last = ctx.attr_int("select_last_index", 0) != 0;
    Folding f{x.shape(), std::vector<bool>(x.ndim(), false), ctx.attr_int("keepdims", 1) != 0};
    f.folded[axis] = true;
    int64_t n = x.dim(int(axis));
    Tensor best = fold(x, f, extreme, [](Expr e, const std::vector<Var>&) { return e; }, ctx.out_name() + "_best");
    return {tir::compute(f.out_shape(), [&](const std::vector<Var>& i) {
      IterVar k = tir::reduce_axis(n, ctx.out_name() + "_k");
      Expr v = x(f.input_index(i, {k.var}));
      // The extreme is NaN exactly when some element is (max/min propagate NaN); numpy then
      // reports the NaN's position.
      Expr hit = tir::eq(v, best(i));
      if (dtype_is_float(v.dtype())) hit = hit || tir::unary(UnOp::IsNaN, v);
      // Positions not holding the extreme contribute a value that never wins.
      Expr miss = last ? Expr(int64_t(-1)) : Expr(n);
      Expr pos = tir::select(hit, Expr(k.var), miss);
      return last ? tir::reduce_max(pos, {k}) : tir::reduce_min(pos, {k});
    }, ctx.out_name())};
  };
}

// CumSum: out[.., j, ..] = sum over k of x[.., k, ..] restricted to k <= j (k < j exclusive;
// k >= j / k > j reversed), a reduction over a masked range of the axis.
std::vector<Tensor> cumsum(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> axis_v = ctx.required_ints(1, "axis");
  if (axis_v.size() != 1) ctx.error("axis must be a scalar");
  int64_t axis = ctx.axis(axis_v[0], x.ndim());
  bool exclusive = ctx.attr_int("exclusive", 0) != 0, reverse = ctx.attr_int("reverse", 0) != 0;
  return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    IterVar k = tir::reduce_axis(x.dim(int(axis)), ctx.out_name() + "_k");
    std::vector<Expr> idx = as_exprs(i);
    idx[axis] = k.var;
    Expr j = i[axis];
    Expr in_range = reverse ? (exclusive ? tir::gt(k.var, j) : tir::ge(k.var, j))
                            : (exclusive ? tir::lt(k.var, j) : tir::le(k.var, j));
    Expr v = x(idx);
    return tir::sum(tir::select(in_range, v, c(v, 0)), {k});
  }, ctx.out_name())};
}

}  // namespace

void register_reduce(Registry& r) {
  auto square = [](Expr e) { return e * e; };
  r.add("ReduceSum", reduction(ReduceOp::Sum));
  r.add("ReduceMean", reduction(ReduceOp::Sum, identity, [](Expr a, int64_t n) { return a / c(a, double(n)); }));
  r.add("ReduceMax", reduction(ReduceOp::Max));
  r.add("ReduceMin", reduction(ReduceOp::Min));
  r.add("ReduceProd", reduction(ReduceOp::Prod));
  r.add("ReduceL1", reduction(ReduceOp::Sum, [](Expr e) { return tir::abs(e); }));
  r.add("ReduceL2", reduction(ReduceOp::Sum, square, [](Expr a, int64_t) {
    return via_float(a, [](Expr v) { return tir::sqrt(v); });
  }));
  r.add("ReduceSumSquare", reduction(ReduceOp::Sum, square));
  r.add("ReduceLogSum", reduction(ReduceOp::Sum, identity, [](Expr a, int64_t) {
    return via_float(a, [](Expr v) { return tir::log(v); });
  }));
  r.add("ReduceLogSumExp", reduce_log_sum_exp);
  r.add("ArgMax", arg_extreme(ReduceOp::Max));
  r.add("ArgMin", arg_extreme(ReduceOp::Min));
  r.add("CumSum", cumsum);
}

}  // namespace kiln::ops
