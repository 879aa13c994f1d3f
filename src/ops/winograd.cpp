// kiln.ConvWinograd(x, w[, b]): a 3x3 convolution (stride 1, padding 1, group 1), its input and
// output each blocked or plain (attributes `blocked_in` / `blocked_out`, as kiln.ConvBlocked),
// computed with Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2x2 block of outputs (a
// tile) comes from the 4x4 input patch d around it:
//   Y = A^T [ (G g G^T) . (B^T d B) ] A
// so the 16 elementwise products per tile and channel pair replace 36 multiplies: the 16
// products summed over input channels are 16 independent matrix products [tiles x C] x [C x K],
// which take the blocked convolution's register-tiled schedule. Four stages:
//   U[e, K/16, C/16, 16, 16]       = G g G^T    weights, a constant stage filled at compile time
//   V[N, 16 band + e, C/16, T, 16] = B^T d B    input transform, per run (T tiles per band)
//   M[N, 16 band + e, K/16, T, 16] = sum_c V U  the 16 products (e = 4 xi + nu)
//   y[N, K/16, H*W, 16]            = A^T M A    output transform, where epilogues fuse
// (a plain input is first copied into the padded blocked layout, a plain output converted from y).
// B^T, G and A^T have entries 0, +-1 and +-1/2: each transform is a few adds, written out below
// rather than as products with constant matrices. Its transforms only add and halve, so it
// rounds about as a direct sum does; F(4x4, 3x3) would save more multiplies but its
// coefficients (up to 5, and 1/24) cost precision. An odd extent's last tile row / column
// reads one more row / column of padding and stores only its valid outputs.
#include "ops/blocked.h"

namespace kiln::ops {

namespace {

using Idx = std::vector<Expr>;

Expr f32(double v) { return tir::make_const(DType::F32, v); }
Expr sign(const Expr& positive) { return tir::select(positive, f32(1), f32(-1)); }

// Rows of B^T: row xi is d[first(xi)] + s(xi) * d[second(xi)], with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
Expr bt_first(const Expr& xi) { return tir::select(tir::eq(xi, 0), Expr(0), tir::select(tir::eq(xi, 3), Expr(1), xi)); }
Expr bt_second(const Expr& xi) {
  return tir::select(tir::lt(xi, 2), Expr(2), tir::select(tir::eq(xi, 2), Expr(1), Expr(3)));
}
Expr bt_sign(const Expr& xi) { return sign(tir::eq(xi, 1)); }

// G[xi][r], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
Expr g_coefficient(const Expr& xi, int64_t r) {
  static const double g[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  return tir::select(
      tir::eq(xi, 0), f32(g[0][r]),
      tir::select(tir::eq(xi, 1), f32(g[1][r]), tir::select(tir::eq(xi, 2), f32(g[2][r]), f32(g[3][r]))));
}

}  // namespace

Tensor conv_winograd(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  bool in_blocked = ctx.attr_int("blocked_in", 0) != 0, out_blocked = ctx.attr_int("blocked_out", 0) != 0;
  if (x.dtype() != DType::F32 || w.dtype() != DType::F32 || w.ndim() != 4)
    ctx.error("expects f32 input and 4-D f32 weights");
  if (!in_blocked && x.ndim() != 4) ctx.error("plain input must be N, C, H, W");
  Plane p = in_blocked ? blocked_plane(ctx, x) : Plane{x.dim(1), x.dim(2), x.dim(3)};
  int64_t out_channels = w.dim(0);
  if (w.dim(1) != p.channels || w.dim(2) != 3 || w.dim(3) != 3 || (out_blocked && out_channels % kChannelBlock) ||
      ctx.attr_int("group", 1) != 1)
    ctx.error("weights ", shape_str(w.shape()), " are not a 3x3 convolution of ", p.channels, " channels");
  Window win = sliding_window(ctx, {p.height, p.width}, {3, 3});
  for (int d = 0; d < 2; ++d)
    if (win.strides[d] != 1 || win.dilations[d] != 1 || win.pad_begin[d] != 1 || win.pad_end[d] != 1)
      ctx.error("takes stride 1, dilation 1 and padding 1 only");
  std::string name = ctx.out_name();
  // Channel counts that do not fill blocks (plain input or output) are padded with zero
  // weights; the padded lanes of the products are never stored.
  int64_t n = x.dim(0), cb_count = channel_blocks(p.channels), kb_count = channel_blocks(out_channels);
  int64_t tiles_w = (p.width + 1) / 2, tiles = (p.height + 1) / 2 * tiles_w;
  for (int d = 0; d < 2; ++d) win.pad_end[d] += win.in[d] % 2;
  auto xi_of = [](const Expr& e) { return floordiv(e, 4); };
  auto nu_of = [](const Expr& e) { return floormod(e, 4); };

  Tensor u = tir::compute_materialized(
      {16, kb_count, cb_count, kChannelBlock, kChannelBlock},
      [&](const std::vector<Var>& i) {
        Expr xi = xi_of(i[0]), nu = nu_of(i[0]), k = Expr(i[1]) * kChannelBlock + i[4],
             c = Expr(i[2]) * kChannelBlock + i[3];
        Expr sum = f32(0);
        for (int64_t r = 0; r < 3; ++r)
          for (int64_t s = 0; s < 3; ++s)
            sum = sum + g_coefficient(xi, r) * g_coefficient(nu, s) *
                            w(Idx{tir::min(k, out_channels - 1), tir::min(c, p.channels - 1), r, s});
        bool padded = kb_count * kChannelBlock != out_channels || cb_count * kChannelBlock != p.channels;
        return padded ? tir::select(tir::lt(k, out_channels) && tir::lt(c, p.channels), sum, f32(0)) : sum;
      },
      name + "_wwinograd");

  Tensor keep;
  BlockedRead read = in_blocked ? padded_blocked(x, p, win, f32(0), name + "_padded", &keep)
                                : padded_blocked_from_plain(x, p, win, name + "_padded", &keep);
  // Over a large plane the tiles go in bands of whole tile rows, the band the outermost axis
  // of the transformed inputs and of the products: nest fusion then makes one band's
  // transformed inputs (at most 512 KiB for all 16 products) just before its products read
  // them, instead of each product's slice of the whole plane. Band and product share one axis
  // (16 band + e), the outermost, which nest fusion slices and the threads share.
  int64_t tiles_h = tiles / tiles_w, row_bytes = 16 * tiles_w * cb_count * kChannelBlock * 4, band_rows = tiles_h;
  if (row_bytes * tiles_h > 16 * 512 * 1024)
    for (band_rows = std::max<int64_t>(1, 512 * 1024 / row_bytes); tiles_h % band_rows; --band_rows) {
    }
  int64_t bands = tiles_h / band_rows, band_tiles = band_rows * tiles_w;
  Tensor v = tir::compute_materialized(
      {n, bands * 16, cb_count, band_tiles, kChannelBlock},
      [&](const std::vector<Var>& i) {
        Expr e = floormod(Expr(i[1]), 16), xi = xi_of(e), nu = nu_of(e);
        Expr tile = floordiv(Expr(i[1]), 16) * band_tiles + i[3];
        Expr row = floordiv(tile, tiles_w) * 2, col = floormod(tile, tiles_w) * 2;
        auto d = [&](const Expr& r, const Expr& c) { return read(i[0], i[2], row + r, col + c, i[4]); };
        auto row_pair = [&](const Expr& r) { return d(r, bt_first(nu)) + bt_sign(nu) * d(r, bt_second(nu)); };
        return row_pair(bt_first(xi)) + bt_sign(xi) * row_pair(bt_second(xi));
      },
      name + "_vwinograd");

  // The register tile takes 6 tiles x 16 output channels; the schedule keeps one block of
  // weights in L1 while the band's tile rows pass.
  Tensor m = tir::compute(
      {n, bands * 16, kb_count, band_tiles, kChannelBlock},
      [&](const std::vector<Var>& i) {
        auto cb = tir::reduce_axis(cb_count, name + "_rcb"), cl = tir::reduce_axis(kChannelBlock, name + "_rcl");
        return tir::sum(
            v(Idx{i[0], i[1], cb.var, i[3], cl.var}) * u(Idx{floormod(Expr(i[1]), 16), i[2], cb.var, cl.var, i[4]}),
            {cb, cl});
      },
      name + "_mwinograd");
  auto m_at = [&](const Expr& b, const Expr& e, const Expr& kb, const Expr& tile, const Expr& l) {
    Expr be = floordiv(tile, band_tiles) * 16 + e, t = floormod(tile, band_tiles);
    return m(Idx{b, be, kb, t, l});
  };

  // A^T = [1 1 1 0; 0 1 -1 -1]: output row a is m[a] + s(a) * (m[a + 1] + m[a + 2]).
  auto bias = [&](const Expr& k) { return ctx.has_input(2) ? ctx.input(2)(k) : f32(0); };
  auto transform = [&](const std::vector<Var>& i) {
    Expr h = floordiv(Expr(i[2]), p.width), col = floormod(Expr(i[2]), p.width);
    Expr a = floormod(h, 2), b = floormod(col, 2), tile = floordiv(h, 2) * tiles_w + floordiv(col, 2);
    auto mv = [&](const Expr& xi, const Expr& nu) { return m_at(i[0], xi * 4 + nu, i[1], tile, i[3]); };
    auto row = [&](const Expr& xi) { return mv(xi, b) + sign(tir::eq(b, 0)) * (mv(xi, b + 1) + mv(xi, b + 2)); };
    return row(a) + sign(tir::eq(a, 0)) * (row(a + 1) + row(a + 2));
  };
  Shape blocked_out{n, kb_count, p.height * p.width, kChannelBlock};
  if (out_blocked)
    return tir::compute(
        blocked_out, [&](const std::vector<Var>& i) { return transform(i) + bias(Expr(i[1]) * kChannelBlock + i[3]); },
        name);
  // A plain output from the blocked one: vector stores along the channels first, then one
  // conversion (as kiln.FromBlocked), where the epilogue fuses.
  Tensor y = tir::compute_materialized(blocked_out, transform, name + "_yblocked");
  return tir::compute(
      {n, out_channels, p.height, p.width},
      [&](const std::vector<Var>& i) {
        return blocked_element(y, i[0], i[1], i[2], i[3], p.width) + bias(i[1]);
      },
      name);
}

}  // namespace kiln::ops
