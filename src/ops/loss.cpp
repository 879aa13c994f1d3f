// Loss operators: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, as gathers by label
// plus reductions.
#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

// Sum of f over every index of `shape` (a rank-0 result).
Tensor sum_all(const Shape& shape, const std::function<Expr(const std::vector<Expr>&)>& f, const std::string& name) {
  std::vector<tir::IterVar> axes;
  std::vector<Expr> idx;
  for (size_t d = 0; d < shape.size(); ++d) {
    axes.push_back(tir::reduce_axis(shape[d], name + "_r" + std::to_string(d)));
    idx.push_back(axes.back().var);
  }
  return tir::compute({}, [&](const std::vector<Var>&) { return tir::sum(f(idx), axes); }, name);
}

// loss over `logp` [N, C, d...] and `target` [N, d...]; `weight` [C] may be undefined.
Tensor nll(OpContext& ctx, const Tensor& logp, const Tensor& target, const Tensor& weight, const std::string& name) {
  if (logp.ndim() < 2) ctx.error("input must have rank 2 or more");
  if (!dtype_is_int(target.dtype())) ctx.error("target must be an integer tensor");
  int64_t C = logp.dim(1);
  std::string reduction = ctx.attr_string("reduction", "mean");
  bool has_ignore = ctx.has_attr("ignore_index");
  int64_t ignore = ctx.attr_int("ignore_index", 0);
  Shape tshape = target.shape();
  DType t = logp.dtype();
  auto label = [&](const std::vector<Expr>& ti) { return tir::cast(DType::I64, target(ti)); };
  auto active = [&](const std::vector<Expr>& ti) -> Expr {
    return has_ignore ? tir::ne(label(ti), tir::make_int(ignore)) : tir::make_int(1, DType::Bool);
  };
  // Weight of the label at ti (0 where ignored); the label is clamped so no read leaves bounds.
  auto w = [&](const std::vector<Expr>& ti) -> Expr {
    Expr cls = tir::max(tir::make_int(0), tir::min(tir::make_int(C - 1), label(ti)));
    Expr wv = weight.defined() ? weight(cls) : tir::make_const(t, 1);
    return tir::select(active(ti), wv, tir::make_const(t, 0));
  };
  auto loss = [&](const std::vector<Expr>& ti) -> Expr {
    Expr cls = tir::max(tir::make_int(0), tir::min(tir::make_int(C - 1), label(ti)));
    std::vector<Expr> li = {ti[0], cls};
    li.insert(li.end(), ti.begin() + 1, ti.end());
    return -logp(li) * w(ti);
  };
  if (reduction == "none")
    return tir::compute(tshape, [&](const std::vector<Var>& i) { return loss(as_exprs(i)); }, name);
  Tensor total = sum_all(tshape, loss, name + "_sum");
  if (reduction == "sum") return total;
  if (reduction != "mean") ctx.error("reduction '", reduction, "' is not supported");
  Tensor wsum = sum_all(tshape, w, name + "_wsum");
  return tir::compute({}, [&](const std::vector<Var>&) { return total(std::vector<Expr>{}) / wsum(std::vector<Expr>{}); }, name);
}

}  // namespace

void register_loss(Registry& r) {
  r.add("NegativeLogLikelihoodLoss", [](OpContext& ctx) -> std::vector<Tensor> {
    Tensor weight = ctx.has_input(2) ? ctx.input(2) : Tensor();
    return {nll(ctx, ctx.input(0), ctx.input(1), weight, ctx.out_name())};
  });
  r.add("SoftmaxCrossEntropyLoss", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    if (x.ndim() < 2) ctx.error("scores must have rank 2 or more");
    int64_t C = x.dim(1);
    // log_softmax over the class axis, numerically stable.
    Shape red = x.shape();
    red[1] = 1;
    auto at_class = [&](const std::vector<Var>& i, const Expr& c) {
      std::vector<Expr> v = as_exprs(i);
      v[1] = c;
      return v;
    };
    tir::IterVar k1 = tir::reduce_axis(C, "c1"), k2 = tir::reduce_axis(C, "c2");
    Tensor mx = tir::compute(red, [&](const std::vector<Var>& i) { return tir::reduce_max(x(at_class(i, k1.var)), {k1}); }, ctx.out_name() + "_max");
    Tensor se = tir::compute(red, [&](const std::vector<Var>& i) {
      return tir::sum(tir::exp(x(at_class(i, k2.var)) - mx(at_class(i, 0))), {k2});
    }, ctx.out_name() + "_sumexp");
    Tensor logp = tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      return x(i) - mx(at_class(i, 0)) - tir::log(se(at_class(i, 0)));
    }, ctx.out_name(1));
    Tensor weight = ctx.has_input(2) ? ctx.input(2) : Tensor();
    return {nll(ctx, logp, ctx.input(1), weight, ctx.out_name()), logp};
  });
}

}  // namespace kiln::ops
