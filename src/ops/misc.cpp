// Operators that forward or convert data: Identity, Dropout (inference), Cast, CastLike.
#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

Tensor copy_of(const OpContext& ctx, const Tensor& x) {
  return tir::compute(x.shape(), [&](const std::vector<Var>& i) { return x(i); }, ctx.out_name());
}

Tensor cast_to(const OpContext& ctx, const Tensor& x, DType to) {
  return tir::compute(x.shape(), [&](const std::vector<Var>& i) { return tir::cast(to, x(i)); }, ctx.out_name());
}

}  // namespace

void register_misc(Registry& r) {
  r.add("Identity", single([](OpContext& ctx) { return copy_of(ctx, ctx.input(0)); }));
  r.add("Dropout", [](OpContext& ctx) -> std::vector<Tensor> {
    if (const HostTensor* t = ctx.has_input(2) ? ctx.value(2) : nullptr; t && t->get_f64(0) != 0)
      ctx.error("training mode is not supported");
    const Tensor& x = ctx.input(0);
    Tensor mask = tir::compute(x.shape(), [&](const std::vector<Var>&) { return tir::make_int(1, DType::Bool); },
                               ctx.out_name(1));
    return {copy_of(ctx, x), mask};
  });
  r.add("Cast", [](OpContext& ctx) -> std::vector<Tensor> {
    DType to;
    if (!dtype_from_onnx(int(ctx.attr_int("to", 0)), &to)) ctx.error("cast to element type ", ctx.attr_int("to", 0), " is not supported");
    return {cast_to(ctx, ctx.input(0), to)};
  });
  r.add("CastLike", [](OpContext& ctx) -> std::vector<Tensor> {
    return {cast_to(ctx, ctx.input(0), ctx.input(1).dtype())};
  });
}

}  // namespace kiln::ops
