// Elementwise operators (unary, binary with numpy broadcasting, variadic, activations).
#include <cmath>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using tir::BinOp;
using tir::UnOp;

// Before opset 7, binary ops broadcast only with broadcast=1, aligning B to A at `axis`.
Tensor legacy_broadcast(OpContext& ctx, const Tensor& a, const Tensor& b, const std::function<Expr(Expr, Expr)>& f) {
  int64_t axis = ctx.has_attr("axis") ? ctx.axis(ctx.attr_int("axis", 0), a.ndim()) : a.ndim() - b.ndim();
  if (axis < 0 || axis + b.ndim() > a.ndim()) ctx.error("legacy broadcast: B does not fit A at axis ", axis);
  for (int j = 0; j < b.ndim(); ++j)
    if (b.dim(j) != 1 && b.dim(j) != a.dim(axis + j)) ctx.error("legacy broadcast: dimension mismatch");
  return tir::compute(a.shape(), [&](const std::vector<Var>& i) {
    std::vector<Expr> bi;
    for (int j = 0; j < b.ndim(); ++j) bi.push_back(b.dim(j) == 1 ? Expr(0) : Expr(i[axis + j]));
    return f(a(i), b(bi));
  }, ctx.out_name());
}

Converter binary_op(const std::function<Expr(Expr, Expr)>& f) {
  return [f](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (a.dtype() != b.dtype())
      ctx.error("inputs have different types: ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
    if (ctx.opset() < 7 && ctx.attr_int("broadcast", 0)) return {legacy_broadcast(ctx, a, b, f)};
    return {broadcast_compute(ctx, {a, b}, [&](const std::vector<Expr>& v) { return f(v[0], v[1]); }, ctx.out_name())};
  };
}

Converter unary_op(const std::function<Expr(Expr, OpContext&)>& f) {
  return [f](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    return {tir::compute(x.shape(), [&](const std::vector<Var>& i) { return f(x(i), ctx); }, ctx.out_name())};
  };
}

Converter float_unary(UnOp op) {
  return unary_op([op](Expr x, OpContext&) { return tir::unary(op, x); });
}

Expr c(const Expr& like, double v) { return tir::make_const(like.dtype(), v); }

Converter variadic(const std::function<Expr(Expr, Expr)>& f, bool mean = false) {
  return [f, mean](OpContext& ctx) -> std::vector<Tensor> {
    std::vector<Tensor> ins;
    for (int i = 0; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i)) ins.push_back(ctx.input(i));
    if (ins.empty()) ctx.error("needs at least one input");
    return {broadcast_compute(ctx, ins, [&](const std::vector<Expr>& v) {
      Expr r = v[0];
      for (size_t k = 1; k < v.size(); ++k) r = f(r, v[k]);
      if (mean) r = r / c(r, double(v.size()));
      return r;
    }, ctx.out_name())};
  };
}

Expr sigmoid(Expr x) { return c(x, 1) / (c(x, 1) + tir::exp(-x)); }

}  // namespace

void register_elementwise(Registry& r) {
  r.add("Add", binary_op([](Expr a, Expr b) { return a + b; }));
  r.add("Sub", binary_op([](Expr a, Expr b) { return a - b; }));
  r.add("Mul", binary_op([](Expr a, Expr b) { return a * b; }));
  r.add("Div", binary_op([](Expr a, Expr b) { return a / b; }));
  r.add("Pow", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    // x^2 with a constant exponent (LayerNorm's variance as exporters write it): one multiply,
    // which is exactly the correctly rounded square, instead of a pow call per element.
    if (const HostTensor* e = dtype_is_float(a.dtype()) ? ctx.value(1) : nullptr;
        e && e->numel() == 1 && e->get_f64(0) == 2.0 && shape_numel(b.shape()) == 1 && b.ndim() <= a.ndim())
      return {tir::compute(a.shape(), [&](const std::vector<Var>& i) { return a(i) * a(i); }, ctx.out_name())};
    return {broadcast_compute(ctx, {a, b}, [&](const std::vector<Expr>& v) {
      Expr e = v[1];
      if (e.dtype() != v[0].dtype()) e = tir::cast(v[0].dtype(), e);
      return tir::pow(v[0], e);
    }, ctx.out_name())};
  });
  r.add("Mod", [](OpContext& ctx) -> std::vector<Tensor> {
    bool fmod = ctx.attr_int("fmod", 0) != 0;
    const Tensor& a = ctx.input(0);
    if (dtype_is_float(a.dtype()) && !fmod) ctx.error("fmod must be 1 for floating-point inputs");
    return {broadcast_compute(ctx, {a, ctx.input(1)}, [&](const std::vector<Expr>& v) {
      return fmod ? v[0] % v[1] : tir::floormod(v[0], v[1]);
    }, ctx.out_name())};
  });
  r.add("BitShift", [](OpContext& ctx) -> std::vector<Tensor> {
    bool left = ctx.attr_string("direction", "") == "LEFT";
    return {broadcast_compute(ctx, {ctx.input(0), ctx.input(1)}, [&](const std::vector<Expr>& v) {
      return tir::binary(left ? BinOp::Shl : BinOp::Shr, v[0], v[1]);
    }, ctx.out_name())};
  });
  r.add("And", binary_op([](Expr a, Expr b) { return a && b; }));
  r.add("Or", binary_op([](Expr a, Expr b) { return a || b; }));
  r.add("Xor", binary_op([](Expr a, Expr b) { return tir::binary(BinOp::Xor, a, b); }));
  r.add("BitwiseAnd", binary_op([](Expr a, Expr b) { return tir::binary(BinOp::And, a, b); }));
  r.add("BitwiseOr", binary_op([](Expr a, Expr b) { return tir::binary(BinOp::Or, a, b); }));
  r.add("BitwiseXor", binary_op([](Expr a, Expr b) { return tir::binary(BinOp::Xor, a, b); }));
  r.add("BitwiseNot", unary_op([](Expr x, OpContext&) { return tir::unary(UnOp::Not, x); }));
  r.add("Equal", binary_op([](Expr a, Expr b) { return tir::eq(a, b); }));
  r.add("Less", binary_op([](Expr a, Expr b) { return tir::lt(a, b); }));
  r.add("LessOrEqual", binary_op([](Expr a, Expr b) { return tir::le(a, b); }));
  r.add("Greater", binary_op([](Expr a, Expr b) { return tir::gt(a, b); }));
  r.add("GreaterOrEqual", binary_op([](Expr a, Expr b) { return tir::ge(a, b); }));
  r.add("Max", variadic([](Expr a, Expr b) { return tir::max(a, b); }));
  r.add("Min", variadic([](Expr a, Expr b) { return tir::min(a, b); }));
  r.add("Sum", variadic([](Expr a, Expr b) { return a + b; }));
  r.add("Mean", variadic([](Expr a, Expr b) { return a + b; }, true));

  r.add("Not", unary_op([](Expr x, OpContext&) { return !x; }));
  r.add("Neg", unary_op([](Expr x, OpContext&) { return -x; }));
  r.add("Abs", float_unary(UnOp::Abs));
  r.add("Sign", float_unary(UnOp::Sign));
  r.add("Exp", float_unary(UnOp::Exp));
  r.add("Log", float_unary(UnOp::Log));
  r.add("Sqrt", float_unary(UnOp::Sqrt));
  r.add("Sin", float_unary(UnOp::Sin));
  r.add("Cos", float_unary(UnOp::Cos));
  r.add("Tan", float_unary(UnOp::Tan));
  r.add("Asin", float_unary(UnOp::Asin));
  r.add("Acos", float_unary(UnOp::Acos));
  r.add("Atan", float_unary(UnOp::Atan));
  r.add("Sinh", float_unary(UnOp::Sinh));
  r.add("Cosh", float_unary(UnOp::Cosh));
  r.add("Tanh", float_unary(UnOp::Tanh));
  r.add("Asinh", float_unary(UnOp::Asinh));
  r.add("Acosh", float_unary(UnOp::Acosh));
  r.add("Atanh", float_unary(UnOp::Atanh));
  r.add("Erf", float_unary(UnOp::Erf));
  r.add("Floor", float_unary(UnOp::Floor));
  r.add("Ceil", float_unary(UnOp::Ceil));
  r.add("Round", float_unary(UnOp::Round));
  r.add("IsNaN", float_unary(UnOp::IsNaN));
  r.add("IsInf", unary_op([](Expr x, OpContext& ctx) {
    bool pos = ctx.attr_int("detect_positive", 1) != 0, neg = ctx.attr_int("detect_negative", 1) != 0;
    if (pos && neg) return tir::unary(UnOp::IsInf, x);
    if (pos) return tir::unary(UnOp::IsPosInf, x);
    if (neg) return tir::unary(UnOp::IsNegInf, x);
    return tir::make_int(0, DType::Bool);
  }));
  r.add("Reciprocal", unary_op([](Expr x, OpContext&) { return c(x, 1) / x; }));
  r.add("Relu", unary_op([](Expr x, OpContext&) { return tir::max(x, c(x, 0)); }));
  r.add("Sigmoid", unary_op([](Expr x, OpContext&) { return sigmoid(x); }));
  r.add("Softplus", unary_op([](Expr x, OpContext&) { return tir::log(tir::exp(x) + c(x, 1)); }));
  r.add("Softsign", unary_op([](Expr x, OpContext&) { return x / (c(x, 1) + tir::abs(x)); }));
  r.add("Mish", unary_op([](Expr x, OpContext&) { return x * tir::tanh(tir::log(tir::exp(x) + c(x, 1))); }));
  r.add("LeakyRelu", unary_op([](Expr x, OpContext& ctx) {
    return tir::select(tir::lt(x, c(x, 0)), x * c(x, ctx.attr_float("alpha", 0.01)), x);
  }));
  r.add("Elu", unary_op([](Expr x, OpContext& ctx) {
    return tir::select(tir::lt(x, c(x, 0)), c(x, ctx.attr_float("alpha", 1.0)) * (tir::exp(x) - c(x, 1)), x);
  }));
  r.add("Celu", unary_op([](Expr x, OpContext& ctx) {
    Expr a = c(x, ctx.attr_float("alpha", 1.0));
    return tir::max(x, c(x, 0)) + tir::min(c(x, 0), a * (tir::exp(x / a) - c(x, 1)));
  }));
  r.add("Selu", unary_op([](Expr x, OpContext& ctx) {
    Expr a = c(x, ctx.attr_float("alpha", 1.67326319217681884765625));
    Expr g = c(x, ctx.attr_float("gamma", 1.05070102214813232421875));
    return tir::select(tir::le(x, c(x, 0)), g * (a * tir::exp(x) - a), g * x);
  }));
  r.add("ThresholdedRelu", unary_op([](Expr x, OpContext& ctx) {
    return tir::select(tir::gt(x, c(x, ctx.attr_float("alpha", 1.0))), x, c(x, 0));
  }));
  r.add("HardSigmoid", unary_op([](Expr x, OpContext& ctx) {
    Expr a = c(x, ctx.attr_float("alpha", 0.2)), b = c(x, ctx.attr_float("beta", 0.5));
    return tir::max(c(x, 0), tir::min(c(x, 1), a * x + b));
  }));
  r.add("HardSwish", unary_op([](Expr x, OpContext&) {
    return x * tir::max(c(x, 0), tir::min(c(x, 1), x / c(x, 6) + c(x, 0.5)));
  }));
  r.add("Gelu", unary_op([](Expr x, OpContext& ctx) {
    if (ctx.attr_string("approximate", "none") == "tanh")
      return c(x, 0.5) * x * (c(x, 1) + tir::tanh(c(x, std::sqrt(2.0 / M_PI)) * (x + c(x, 0.044715) * x * x * x)));
    return c(x, 0.5) * x * (c(x, 1) + tir::erf(x / c(x, std::sqrt(2.0))));
  }));
  r.add("PRelu", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    Tensor slope = ctx.input(1);
    if (ctx.opset() < 7 && slope.ndim() == 1 && x.ndim() >= 2 && slope.dim(0) == x.dim(1) && slope.dim(0) != 1) {
      // Before opset 7 a 1-D slope holds one value per channel (axis 1).
      return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
        Expr v = x(i);
        return tir::select(tir::lt(v, c(v, 0)), v * slope(i[1]), v);
      }, ctx.out_name())};
    }
    return {broadcast_compute(ctx, {x, slope}, [&](const std::vector<Expr>& v) {
      return tir::select(tir::lt(v[0], c(v[0], 0)), v[0] * v[1], v[0]);
    }, ctx.out_name())};
  });
  r.add("Clip", [](OpContext& ctx) -> std::vector<Tensor> {
    const Tensor& x = ctx.input(0);
    // Bounds are attributes before opset 11 and optional scalar inputs from 11 on.
    auto bound = [&](int input, const char* attr, double def) -> Expr {
      if (ctx.opset() < 11) return tir::make_const(x.dtype(), ctx.attr_float(attr, def));
      if (!ctx.has_input(input)) return Expr();
      const Tensor& b = ctx.input(input);
      if (shape_numel(b.shape()) != 1) ctx.error("input ", input, " must be a scalar");
      return b(std::vector<Expr>(b.ndim(), Expr(0)));
    };
    Expr lo = bound(1, "min", -INFINITY), hi = bound(2, "max", INFINITY);
    return {tir::compute(x.shape(), [&](const std::vector<Var>& i) {
      Expr v = x(i);
      if (lo.defined()) v = tir::select(tir::lt(v, lo), lo, v);
      if (hi.defined()) v = tir::select(tir::gt(v, hi), hi, v);
      return v;
    }, ctx.out_name())};
  });
  r.add("Shrink", unary_op([](Expr x, OpContext& ctx) {
    Expr lambd = c(x, ctx.attr_float("lambd", 0.5)), bias = c(x, ctx.attr_float("bias", 0.0));
    return tir::select(tir::lt(x, -lambd), x + bias, tir::select(tir::gt(x, lambd), x - bias, c(x, 0)));
  }));
  r.add("Where", [](OpContext& ctx) -> std::vector<Tensor> {
    return {broadcast_compute(ctx, {ctx.input(0), ctx.input(1), ctx.input(2)}, [&](const std::vector<Expr>& v) {
      return tir::select(v[0], v[1], v[2]);
    }, ctx.out_name())};
  });
}

}  // namespace kiln::ops
