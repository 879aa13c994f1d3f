// GridSample: reads the input at continuous grid positions (nearest, bilinear, bicubic), with
// zeros / border / reflection padding. Follows PyTorch's grid_sampler semantics for 4-D input.
#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

Expr f(double v) { return tir::make_const(DType::F32, v); }

// Maps a coordinate into [0, size-1] by reflecting at the borders (PyTorch reflect_coordinates).
Expr reflect(Expr x, int64_t size, bool align_corners) {
  double lo = align_corners ? 0 : -0.5, hi = align_corners ? double(size - 1) : double(size) - 0.5;
  if (hi <= lo) return f(0);
  double span = hi - lo;
  Expr d = tir::abs(x - f(lo));
  Expr flips = tir::floor(d / f(span));
  Expr extra = d - flips * f(span);
  Expr even = tir::eq(tir::floormod(tir::cast(DType::I64, flips), tir::make_int(2)), tir::make_int(0));
  Expr r = tir::select(even, extra + f(lo), f(span) - extra + f(lo));
  return tir::max(f(0), tir::min(f(double(size - 1)), r));
}

struct Sampler {
  Tensor x;
  std::string padding;
  bool align_corners;

  Expr unnormalize(Expr g, int64_t size) const {
    return align_corners ? (g + f(1)) / f(2) * f(double(size - 1)) : ((g + f(1)) * f(double(size)) - f(1)) / f(2);
  }
  Expr pad_coord(Expr c, int64_t size) const {
    if (padding == "border") return tir::max(f(0), tir::min(f(double(size - 1)), c));
    if (padding == "reflection") return reflect(c, size, align_corners);
    return c;
  }
  // Pixel (iy, ix) of image (n, ch); 0 outside (only reachable with zeros padding).
  Expr pixel(const Expr& n, const Expr& ch, Expr iy, Expr ix) const {
    int64_t H = x.dim(2), W = x.dim(3);
    Expr inside = tir::ge(ix, tir::make_int(0)) && tir::lt(ix, tir::make_int(W)) && tir::ge(iy, tir::make_int(0)) &&
                  tir::lt(iy, tir::make_int(H));
    Expr cx = tir::max(tir::make_int(0), tir::min(tir::make_int(W - 1), ix));
    Expr cy = tir::max(tir::make_int(0), tir::min(tir::make_int(H - 1), iy));
    return tir::select(inside, tir::cast(DType::F32, x(n, ch, cy, cx)), f(0));
  }
};

// Cubic convolution weights (A = -0.75) for offset t in [0, 1).
std::array<Expr, 4> cubic_weights(Expr t) {
  const double A = -0.75;
  auto near = [&](Expr d) { return ((f(A + 2) * d - f(A + 3)) * d * d) + f(1); };
  auto far = [&](Expr d) { return ((f(A) * d - f(5 * A)) * d + f(8 * A)) * d - f(4 * A); };
  return {far(t + f(1)), near(t), near(f(1) - t), far(f(2) - t)};
}

std::vector<Tensor> grid_sample(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  if (x.ndim() != 4 || grid.ndim() != 4 || grid.dim(3) != 2) ctx.error("only 4-D input with a [N, H, W, 2] grid is supported");
  std::string mode = ctx.attr_string("mode", "bilinear");
  if (mode == "linear") mode = "bilinear";
  if (mode == "cubic") mode = "bicubic";
  Sampler s{x, ctx.attr_string("padding_mode", "zeros"), ctx.attr_int("align_corners", 0) != 0};
  if (s.padding != "zeros" && s.padding != "border" && s.padding != "reflection")
    ctx.error("padding_mode '", s.padding, "' is not supported");
  if (mode != "bilinear" && mode != "nearest" && mode != "bicubic") ctx.error("mode '", mode, "' is not supported");
  int64_t H = x.dim(2), W = x.dim(3);
  Shape out = {x.dim(0), x.dim(1), grid.dim(1), grid.dim(2)};
  return {tir::compute(out, [&](const std::vector<Var>& i) {
    Expr n = i[0], ch = i[1];
    Expr gx = s.unnormalize(tir::cast(DType::F32, grid(n, i[2], i[3], 0)), W);
    Expr gy = s.unnormalize(tir::cast(DType::F32, grid(n, i[2], i[3], 1)), H);
    Expr v;
    if (mode == "bicubic") {
      Expr x0 = tir::floor(gx), y0 = tir::floor(gy);
      auto wx = cubic_weights(gx - x0), wy = cubic_weights(gy - y0);
      v = f(0);
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          // Each tap's coordinate is padded on its own, as PyTorch does for bicubic.
          Expr tx = tir::cast(DType::I64, s.pad_coord(x0 + f(b - 1), W));
          Expr ty = tir::cast(DType::I64, s.pad_coord(y0 + f(a - 1), H));
          v = v + wy[a] * wx[b] * s.pixel(n, ch, ty, tx);
        }
    } else {
      gx = s.pad_coord(gx, W);
      gy = s.pad_coord(gy, H);
      if (mode == "nearest") {
        v = s.pixel(n, ch, tir::cast(DType::I64, tir::unary(tir::UnOp::Round, gy)),
                    tir::cast(DType::I64, tir::unary(tir::UnOp::Round, gx)));
      } else {
        Expr x0 = tir::floor(gx), y0 = tir::floor(gy);
        Expr tx = gx - x0, ty = gy - y0;
        Expr ix = tir::cast(DType::I64, x0), iy = tir::cast(DType::I64, y0);
        Expr one = tir::make_int(1);
        v = s.pixel(n, ch, iy, ix) * (f(1) - tx) * (f(1) - ty) + s.pixel(n, ch, iy, ix + one) * tx * (f(1) - ty) +
            s.pixel(n, ch, iy + one, ix) * (f(1) - tx) * ty + s.pixel(n, ch, iy + one, ix + one) * tx * ty;
      }
    }
    return tir::cast(x.dtype(), v);
  }, ctx.out_name())};
}

}  // namespace

void register_sample(Registry& r) { r.add("GridSample", grid_sample); }

}  // namespace kiln::ops
