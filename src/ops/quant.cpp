// Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear.
#include <cmath>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

// Element of a scale / zero-point tensor for data index i: a scalar, or per-`axis` (1-D).
Expr per_axis(const Tensor& p, const std::vector<Var>& i, int64_t axis) {
  if (p.ndim() == 0) return p(std::vector<Expr>{});
  if (shape_numel(p.shape()) == 1) return p(std::vector<Expr>(p.ndim(), Expr(0)));
  return p(i[axis]);
}

Expr saturate_round(Expr v, DType to) {
  // Round half to even, then clamp to the integer type's range.
  Expr r = tir::unary(tir::UnOp::Round, v);
  Expr lo = tir::make_const(DType::F32, to == DType::U8 ? 0 : -128);
  Expr hi = tir::make_const(DType::F32, to == DType::U8 ? 255 : 127);
  return tir::cast(to, tir::max(lo, tir::min(hi, r)));
}

// The axis a per-axis scale applies to (0, unused, for a scalar scale).
int64_t quant_axis(OpContext& ctx, const Tensor& x, const Tensor& scale) {
  if (scale.ndim() > 1) ctx.error("blocked quantization is not supported");
  if (shape_numel(scale.shape()) == 1) return 0;
  int64_t axis = ctx.axis(ctx.attr_int("axis", 1), x.ndim());
  if (scale.dim(0) != x.dim(axis))
    ctx.error("scale has ", scale.dim(0), " elements, axis ", axis, " has ", x.dim(axis));
  return axis;
}

}  // namespace

void register_quant(Registry& r) {
  r.add("QuantizeLinear", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    const Tensor& scale = ctx.input(1);
    Tensor zp = ctx.has_input(2) ? ctx.input(2) : Tensor();
    DType to = zp.defined() ? zp.dtype() : DType::U8;
    if (to != DType::U8 && to != DType::I8) ctx.error("quantizing to ", dtype_name(to), " is not supported");
    int64_t axis = quant_axis(ctx, x, scale);
    return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      Expr v = tir::cast(DType::F32, x(i)) / tir::cast(DType::F32, per_axis(scale, i, axis));
      Expr q = tir::unary(tir::UnOp::Round, v);
      if (zp.defined()) q = q + tir::cast(DType::F32, per_axis(zp, i, axis));
      return saturate_round(q, to);
    }, ctx.out_name())};
  });
  r.add("DequantizeLinear", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    const Tensor& scale = ctx.input(1);
    Tensor zp = ctx.has_input(2) ? ctx.input(2) : Tensor();
    int64_t axis = quant_axis(ctx, x, scale);
    DType acc = x.dtype() == DType::I32 ? DType::F64 : DType::F32;
    return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      Expr v = tir::cast(acc, x(i));
      if (zp.defined()) v = v - tir::cast(acc, per_axis(zp, i, axis));
      return tir::cast(scale.dtype(), v * tir::cast(acc, per_axis(scale, i, axis)));
    }, ctx.out_name())};
  });
  r.add("DynamicQuantizeLinear", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    check_float(ctx, x);
    std::vector<tir::IterVar> ax1, ax2;
    std::vector<Expr> i1, i2;
    for (int d = 0; d < x.ndim(); ++d) {
      ax1.push_back(tir::reduce_axis(x.dim(d), "a" + std::to_string(d)));
      ax2.push_back(tir::reduce_axis(x.dim(d), "b" + std::to_string(d)));
      i1.push_back(ax1.back().var);
      i2.push_back(ax2.back().var);
    }
    auto f32 = [](Expr e) { return tir::cast(DType::F32, e); };
    Tensor mx = tir::compute({}, [&](const std::vector<Var>&) { return tir::reduce_max(f32(x(i1)), ax1); }, ctx.out_name() + "_max");
    Tensor mn = tir::compute({}, [&](const std::vector<Var>&) { return tir::reduce_min(f32(x(i2)), ax2); }, ctx.out_name() + "_min");
    std::vector<Expr> s0;
    auto hi = [&] { return tir::max(tir::make_const(DType::F32, 0), mx(s0)); };
    auto lo = [&] { return tir::min(tir::make_const(DType::F32, 0), mn(s0)); };
    Tensor scale = tir::compute({}, [&](const std::vector<Var>&) { return (hi() - lo()) / tir::make_const(DType::F32, 255); }, ctx.out_name(1));
    Tensor zp = tir::compute({}, [&](const std::vector<Var>&) {
      Expr sc = (hi() - lo()) / tir::make_const(DType::F32, 255);
      return saturate_round(tir::make_const(DType::F32, 0) - lo() / sc, DType::U8);
    }, ctx.out_name(2));
    Tensor y = tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      Expr sc = (hi() - lo()) / tir::make_const(DType::F32, 255);
      Expr z = tir::unary(tir::UnOp::Round, tir::max(tir::make_const(DType::F32, 0), tir::min(tir::make_const(DType::F32, 255), tir::make_const(DType::F32, 0) - lo() / sc)));
      return saturate_round(tir::unary(tir::UnOp::Round, f32(x(i)) / sc) + z, DType::U8);
    }, ctx.out_name(0));
    return {y, scale, zp};
  });
}

}  // namespace kiln::ops
