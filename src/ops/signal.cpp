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

// Real and imaginary parts of sum_n x[n] * w[n] * exp(-+2 pi i k n / N) as two reductions.
// `read(n, part)` returns the signal's part (0 real, 1 imaginary) at position n, 0 outside.
struct Spectrum {
  Tensor re, im;
};
Spectrum fourier(const Shape& shape, int64_t freq_axis, int64_t n_len, int64_t period, bool inverse,
                 const std::function<Expr(const std::vector<Var>&, const Expr& n, int part)>& read,
                 const std::string& name) {
  auto part = [&](int which) {
    tir::IterVar n = tir::reduce_axis(n_len, name + (which ? "_ni" : "_nr"));
    return tir::compute(shape, [&](const std::vector<Var>& i) {
      Expr kn = tir::floormod(Expr(i[freq_axis]) * n.var, tir::make_int(period));
      Expr theta = tir::cast(DType::F64, kn) * tir::make_const(DType::F64, 2 * M_PI / double(period));
      Expr c = tir::unary(tir::UnOp::Cos, theta), s = tir::unary(tir::UnOp::Sin, theta);
      if (!inverse) s = -s;
      Expr xr = tir::cast(DType::F64, read(i, n.var, 0)), xi = tir::cast(DType::F64, read(i, n.var, 1));
      // (xr + i xi)(c + i s)
      return tir::sum(which == 0 ? xr * c - xi * s : xr * s + xi * c, {n});
    }, name + (which ? "_im" : "_re"));
  };
  return {part(0), part(1)};
}

// Packs real/imaginary parts into a trailing dimension of 2, in type `t`, scaled by `scale`.
Tensor complex_out(const Spectrum& s, DType t, double scale, const std::string& name) {
  Shape out = s.re.shape();
  out.push_back(2);
  return tir::compute(out, [&](const std::vector<Var>& i) {
    std::vector<Expr> idx(i.begin(), i.end() - 1);
    Expr v = tir::select(tir::eq(i.back(), tir::make_int(0)), s.re(idx), s.im(idx));
    return tir::cast(t, v * tir::make_const(DType::F64, scale));
  }, name);
}

std::vector<Tensor> dft(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.ndim() < 3 || (x.dim(-1) != 1 && x.dim(-1) != 2)) ctx.error("input must be [batch, ..., 1 or 2]");
  int64_t axis = ctx.attr_int("axis", 1);
  if (ctx.opset() >= 20) axis = ctx.has_input(2) ? ctx.required_ints(2, "axis").at(0) : -2;
  axis = ctx.axis(axis, x.ndim() - 1);
  bool inverse = ctx.attr_int("inverse", 0) != 0, onesided = ctx.attr_int("onesided", 0) != 0;
  int64_t n_in = x.dim(axis);
  int64_t n = ctx.has_input(1) ? ctx.required_ints(1, "dft_length").at(0) : n_in;
  if (n <= 0) ctx.error("dft_length must be positive");
  Shape shape(x.shape().begin(), x.shape().end() - 1);
  shape[axis] = onesided ? n / 2 + 1 : n;
  bool complex_in = x.dim(-1) == 2;
  auto read = [&](const std::vector<Var>& i, const Expr& pos, int part) -> Expr {
    if (part == 1 && !complex_in) return tir::make_const(x.dtype(), 0);
    std::vector<Expr> idx(i.begin(), i.end());
    Expr inside = tir::lt(pos, tir::make_int(n_in));
    idx[axis] = tir::min(pos, tir::make_int(n_in - 1));
    idx.push_back(tir::make_int(part));
    return tir::select(inside, x(idx), tir::make_const(x.dtype(), 0));
  };
  Spectrum s = fourier(shape, axis, n, n, inverse, read, ctx.out_name() + "_dft");
  return {complex_out(s, x.dtype(), inverse ? 1.0 / double(n) : 1.0, ctx.out_name())};
}

std::vector<Tensor> stft(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.ndim() != 3 || (x.dim(2) != 1 && x.dim(2) != 2)) ctx.error("signal must be [batch, length, 1 or 2]");
  int64_t step = ctx.required_ints(1, "frame_step").at(0);
  Tensor window = ctx.has_input(2) ? ctx.input(2) : Tensor();
  int64_t frame = ctx.has_input(3) ? ctx.required_ints(3, "frame_length").at(0) : window.defined() ? window.dim(0) : 0;
  if (frame <= 0 || step <= 0 || frame > x.dim(1)) ctx.error("frame_length and frame_step must be positive and fit the signal");
  bool onesided = ctx.attr_int("onesided", 1) != 0;
  int64_t frames = 1 + (x.dim(1) - frame) / step;
  Shape shape = {x.dim(0), frames, onesided ? frame / 2 + 1 : frame};
  bool complex_in = x.dim(2) == 2;
  auto read = [&](const std::vector<Var>& i, const Expr& pos, int part) -> Expr {
    if (part == 1 && !complex_in) return tir::make_const(x.dtype(), 0);
    Expr v = x(i[0], Expr(i[1]) * tir::make_int(step) + pos, tir::make_int(part));
    return window.defined() ? v * tir::cast(x.dtype(), window(pos)) : v;
  };
  Spectrum s = fourier(shape, 2, frame, frame, false, read, ctx.out_name() + "_stft");
  return {complex_out(s, x.dtype(), 1.0, ctx.out_name())};
}

}  // namespace

void register_signal(Registry& r) {
  r.add("DFT", dft);
  r.add("STFT", stft);
  r.add("HannWindow", cosine_window(0.5, 0.5, 0));
  r.add("HammingWindow", cosine_window(25.0 / 46.0, 21.0 / 46.0, 0));
  r.add("BlackmanWindow", cosine_window(0.42, 0.5, 0.08));
}

}  // namespace kiln::ops
