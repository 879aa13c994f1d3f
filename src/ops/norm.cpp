// Normalizations: BatchNormalization, InstanceNormalization, LayerNormalization,
// GroupNormalization, LpNormalization, MeanVarianceNormalization and LRN.
// Statistics are reduction stages over the normalized dimensions; the normalization itself is
// one elementwise stage reading them.
#include <algorithm>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using tir::IterVar;
using tir::ReduceOp;

Expr c(const Expr& like, double v) { return tir::make_const(like.dtype(), v); }


Expr cast_to(DType t, const Expr& e) { return e.dtype() == t ? e : tir::cast(t, e); }

// Mean and (population) variance of `x` over the span, as statistic-shaped tensors of x's
// type. The variance is the mean squared deviation (two passes) rather than E[x^2] - E[x]^2,
// which cancels catastrophically, and both sums accumulate in f64 so long spans (a
// transformer's hidden size, a batch's images) do not lose precision.
struct Moments {
  Tensor mean, var;
};

Moments moments(const Tensor& x, const Span& s, const std::string& name) {
  double n = double(s.count());
  auto mean_of = [&](const Tensor& total, const std::string& what) {
    return tir::compute(total.shape(), [&](const std::vector<Var>& g) {
      return cast_to(x.dtype(), total(g) / tir::make_const(DType::F64, n));
    }, name + what);
  };
  Tensor total = s.fold(ReduceOp::Sum, [&](const std::vector<Expr>& i, const std::vector<Var>&) { return cast_to(DType::F64, x(i)); },
                       name + "_sum");
  Tensor mean = mean_of(total, "_mean");
  Tensor sq = s.fold(ReduceOp::Sum, [&](const std::vector<Expr>& i, const std::vector<Var>& g) {
    Expr d = cast_to(DType::F64, x(i) - mean(g));
    return d * d;
  }, name + "_sqdev");
  return {mean, mean_of(sq, "_var")};
}

Expr inv_std(const Expr& var, double epsilon) { return c(var, 1) / tir::sqrt(var + c(var, epsilon)); }

// Element of a per-channel vector (shape [C]) for an element of an N x C x ... input.
Expr per_channel(const Tensor& v, const std::vector<Var>& i) { return v(i[1]); }

std::vector<Tensor> batch_norm(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  if (x.ndim() < 2) ctx.error("input must have a channel dimension");
  if (ctx.opset() < 9 && ctx.attr_int("spatial", 1) == 0) ctx.error("spatial=0 is not supported");
  const Tensor &scale = ctx.input(1), &bias = ctx.input(2), &run_mean = ctx.input(3), &run_var = ctx.input(4);
  double eps = ctx.attr_float("epsilon", 1e-5);
  bool training = ctx.opset() >= 14 && ctx.attr_int("training_mode", 0) != 0;
  const auto& outs = ctx.node().outputs;
  bool wants_stats = std::any_of(outs.begin() + 1, outs.end(), [](const std::string& o) { return !o.empty(); });
  if (ctx.opset() < 14 && wants_stats) ctx.error("training outputs before opset 14 are not supported");

  auto normalize = [&](const std::function<Expr(const std::vector<Var>&)>& mean,
                       const std::function<Expr(const std::vector<Var>&)>& var) {
    return tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      Expr v = x(i);
      auto as_x = [&](const Expr& e) { return cast_to(v.dtype(), e); };  // scale/bias and stats may differ in type
      return (v - as_x(mean(i))) * as_x(per_channel(scale, i)) * inv_std(as_x(var(i)), eps) +
             as_x(per_channel(bias, i));
    }, ctx.out_name());
  };
  if (!training) {
    return {normalize([&](const std::vector<Var>& i) { return per_channel(run_mean, i); },
                      [&](const std::vector<Var>& i) { return per_channel(run_var, i); })};
  }
  // Training: normalize with the batch statistics (over all but the channel dimension) and
  // return the running statistics updated with them.
  Span s{x.shape(), std::vector<bool>(x.ndim(), true)};
  s.spanned[1] = false;
  Moments m = moments(x, s, ctx.out_name());
  auto stat_at_channel = [](const Tensor& stat, const Expr& ch) {
    std::vector<Expr> g(stat.ndim(), Expr(0));
    g[1] = ch;
    return stat(g);
  };
  Tensor y = normalize([&](const std::vector<Var>& i) { return stat_at_channel(m.mean, i[1]); },
                       [&](const std::vector<Var>& i) { return stat_at_channel(m.var, i[1]); });
  double momentum = ctx.attr_float("momentum", 0.9);
  auto running = [&](const Tensor& old, const Tensor& batch, int out) {
    return tir::compute(old.shape(), [&](const std::vector<Var>& ch) {
      Expr o = old(ch);
      return o * c(o, momentum) + cast_to(o.dtype(), stat_at_channel(batch, ch[0])) * c(o, 1 - momentum);
    }, ctx.out_name(out));
  };
  return {y, running(run_mean, m.mean, 1), running(run_var, m.var, 2)};
}

// Normalizes x over `s` and applies `affine(normalized value, element index)`.
Tensor standardize(const Tensor& x, const Moments& m, const Span& s, double eps,
                   const std::function<Expr(Expr, const std::vector<Var>&)>& affine, const std::string& name) {
  return tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    std::vector<Expr> g = s.group_of(i);
    Expr v = x(i);
    return affine((v - m.mean(g)) * inv_std(m.var(g), eps), i);
  }, name);
}

std::vector<Tensor> instance_norm(OpContext& ctx) {
  const Tensor &x = ctx.input(0), &scale = ctx.input(1), &bias = ctx.input(2);
  check_float(ctx, x);
  if (x.ndim() < 3) ctx.error("input must be N x C x D1 ...");
  Span s = Span::from(x.shape(), 2, x.ndim());
  Moments m = moments(x, s, ctx.out_name());
  return {standardize(x, m, s, ctx.attr_float("epsilon", 1e-5), [&](Expr v, const std::vector<Var>& i) {
    return v * per_channel(scale, i) + per_channel(bias, i);
  }, ctx.out_name())};
}

// LayerNormalization: computed over dimensions axis.. in the stash type (f32 for 16-bit
// inputs), rounded to the input type at the end; outputs Y and, when requested, Mean and
// InvStdDev (keepdims shaped, in the stash type).
std::vector<Tensor> layer_norm(OpContext& ctx) {
  const Tensor& x_in = ctx.input(0);
  check_float(ctx, x_in);
  int64_t axis = ctx.axis(ctx.attr_int("axis", -1), x_in.ndim());
  double eps = ctx.attr_float("epsilon", 1e-5);
  DType in_t = x_in.dtype();
  DType stash_t = (in_t == DType::F64) ? DType::F64 : DType::F32;
  Tensor x = tir::compute(x_in.shape(), [&](const std::vector<Var>& i) { return cast_to(stash_t, x_in(i)); },
                          ctx.out_name() + "_x");
  Span s = Span::from(x.shape(), axis, x.ndim());
  Moments m = moments(x, s, ctx.out_name());
  Tensor inv = tir::compute(m.var.shape(), [&](const std::vector<Var>& g) { return inv_std(m.var(g), eps); },
                            ctx.out_name(2));
  Tensor y = tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    std::vector<Expr> g = s.group_of(i);
    Expr v = (x(i) - m.mean(g)) * inv(g) * cast_to(stash_t, broadcast_read(ctx.input(1), i));
    if (ctx.has_input(2)) v = v + cast_to(stash_t, broadcast_read(ctx.input(2), i));
    return cast_to(in_t, v);
  }, ctx.out_name());
  Tensor mean = tir::compute(m.mean.shape(), [&](const std::vector<Var>& g) { return m.mean(g); }, ctx.out_name(1));
  return {y, mean, inv};
}

// GroupNormalization: channels split into num_groups groups, statistics per (n, group) over the
// group's channels and spatial dimensions. Scale and bias are per group (opset 18) or per
// channel (opset 21).
std::vector<Tensor> group_norm(OpContext& ctx) {
  const Tensor &x = ctx.input(0), &scale = ctx.input(1), &bias = ctx.input(2);
  check_float(ctx, x);
  if (x.ndim() < 2) ctx.error("input must be N x C x ...");
  int64_t groups = ctx.attr_int("num_groups", 0), channels = x.dim(1);
  if (groups <= 0 || channels % groups) ctx.error("num_groups must divide the channel count");
  int64_t per_group = channels / groups;
  bool per_channel_affine = scale.dim(0) == channels;
  if (!per_channel_affine && scale.dim(0) != groups) ctx.error("scale must have num_groups or C elements");
  // x viewed as N x G x C/G x ... (inlined into the statistics).
  Shape grouped = {x.dim(0), groups, per_group};
  for (int d = 2; d < x.ndim(); ++d) grouped.push_back(x.dim(d));
  Tensor xg = tir::compute(grouped, [&](const std::vector<Var>& i) {
    std::vector<Expr> idx = {i[0], i[1] * Expr(per_group) + i[2]};
    for (size_t d = 3; d < i.size(); ++d) idx.push_back(i[d]);
    return x(idx);
  }, ctx.out_name() + "_grouped");
  Span s = Span::from(grouped, 2, int64_t(grouped.size()));
  Moments m = moments(xg, s, ctx.out_name());
  double eps = ctx.attr_float("epsilon", 1e-5);
  return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    Expr group = floordiv(i[1], Expr(per_group));
    std::vector<Expr> g(grouped.size(), Expr(0));
    g[0] = i[0];
    g[1] = group;
    Expr affine_idx = per_channel_affine ? Expr(i[1]) : group;
    return (x(i) - m.mean(g)) * inv_std(m.var(g), eps) * scale(affine_idx) + bias(affine_idx);
  }, ctx.out_name())};
}

std::vector<Tensor> mean_variance_norm(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  Span s{x.shape(), std::vector<bool>(x.ndim(), false)};
  for (int64_t a : ctx.attr_ints("axes", {0, 2, 3})) s.spanned[ctx.axis(a, x.ndim(), "axes")] = true;
  Moments m = moments(x, s, ctx.out_name());
  // As the ONNX function body: (x - mean) / (sqrt(var) + 1e-9).
  return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    std::vector<Expr> g = s.group_of(i);
    Expr v = x(i);
    return (v - m.mean(g)) / (tir::sqrt(m.var(g)) + c(v, 1e-9));
  }, ctx.out_name())};
}

std::vector<Tensor> lp_norm(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  int64_t axis = ctx.axis(ctx.attr_int("axis", -1), x.ndim());
  int64_t p = ctx.attr_int("p", 2);
  if (p != 1 && p != 2) ctx.error("p=", p, " is not supported (only 1 and 2)");
  Span s = Span::from(x.shape(), axis, axis + 1);
  Tensor acc = s.fold(ReduceOp::Sum, [&](const std::vector<Expr>& i, const std::vector<Var>&) {
    Expr v = x(i);
    return p == 1 ? tir::abs(v) : v * v;
  }, ctx.out_name() + "_acc");
  // A zero vector stays zero (as the ONNX reference) instead of becoming 0/0.
  return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    Expr a = acc(s.group_of(i));
    Expr v = x(i);
    return tir::select(tir::eq(a, c(a, 0)), c(v, 0), v / (p == 1 ? a : tir::sqrt(a)));
  }, ctx.out_name())};
}

// LRN: x / (bias + alpha / size * sum of squares over a window of `size` channels)^beta, the
// window running from c - floor((size-1)/2) to c + ceil((size-1)/2), clipped to the channels.
std::vector<Tensor> lrn(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  if (x.ndim() < 2) ctx.error("input must be N x C x ...");
  int64_t size = ctx.attr_int("size", 0);
  if (size <= 0) ctx.error("size must be positive");
  double alpha = ctx.attr_float("alpha", 1e-4), beta = ctx.attr_float("beta", 0.75), bias = ctx.attr_float("bias", 1.0);
  int64_t channels = x.dim(1), before = (size - 1) / 2;
  Tensor sq = tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    IterVar k = tir::reduce_axis(size, ctx.out_name() + "_k");
    Expr ch = i[1] - Expr(before) + k.var;
    Expr inside = tir::ge(ch, Expr(0)) && tir::lt(ch, Expr(channels));
    std::vector<Expr> idx = as_exprs(i);
    idx[1] = tir::max(Expr(0), tir::min(Expr(channels - 1), ch));
    Expr v = x(idx);
    return tir::sum(tir::select(inside, v * v, c(v, 0)), {k});
  }, ctx.out_name() + "_sqsum");
  return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    Expr v = x(i);
    return v / tir::pow(c(v, bias) + c(v, alpha / double(size)) * sq(i), c(v, beta));
  }, ctx.out_name())};
}

}  // namespace

void register_norm(Registry& r) {
  r.add("BatchNormalization", batch_norm);
  r.add("InstanceNormalization", instance_norm);
  r.add("LayerNormalization", layer_norm);
  r.add("GroupNormalization", group_norm);
  r.add("LpNormalization", lp_norm);
  r.add("MeanVarianceNormalization", mean_variance_norm);
  r.add("LRN", lrn);
}

}  // namespace kiln::ops
