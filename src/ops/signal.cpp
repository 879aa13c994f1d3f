// Window functions (HannWindow, HammingWindow, BlackmanWindow): closed-form index expressions.
#include <cmath>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

// a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), N = size (periodic) or size - 1 (symmetric).
Converter cosine_window(double a0, double a1, double a2) {
  return [=](OpContext& ctx) -> std::vector<Tensor> {
    int64_t size = ctx.required_ints(0, "size").at(0);
    if (size < 0) ctx.error("size must not be negative");
    DType out;
    if (!dtype_from_onnx(int(ctx.attr_int("output_datatype", 1)), &out)) ctx.error("unsupported output_datatype");
    double n = ctx.attr_int("periodic", 1) ? double(size) : double(size - 1);
    return {tir::compute({size}, [&](const std::vector<Var>& i) {
      Expr x = tir::cast(DType::F64, i[0]) * tir::make_const(DType::F64, 2 * M_PI / n);
      Expr v = tir::make_const(DType::F64, a0) - tir::make_const(DType::F64, a1) * tir::unary(tir::UnOp::Cos, x);
      if (a2 != 0) v = v + tir::make_const(DType::F64, a2) * tir::unary(tir::UnOp::Cos, x * tir::make_const(DType::F64, 2));
      return tir::cast(out, v);
    }, ctx.out_name())};
  };
}

}  // namespace

void register_signal(Registry& r) {
  r.add("HannWindow", cosine_window(0.5, 0.5, 0));
  r.add("HammingWindow", cosine_window(25.0 / 46.0, 21.0 / 46.0, 0));
  r.add("BlackmanWindow", cosine_window(0.42, 0.5, 0.08));
}

}  // namespace kiln::ops
