#include "tir/tile.h"

namespace kiln::tir {

int64_t vnni_group(DType t) { return 4 / dtype_bytes(t); }

DType tile_accumulator(DType a) { return a == DType::BF16 ? DType::F32 : DType::I32; }

bool tile_types_supported(DType a, DType b) {
  if (a == DType::BF16) return b == DType::BF16;
  return (a == DType::U8 || a == DType::I8) && b == DType::I8;
}

Expr vnni_index(const Expr& k, const Expr& n, int64_t n_extent, int64_t group) {
  return (k / make_int(group)) * make_int(n_extent * group) + n * make_int(group) + k % make_int(group);
}

Stmt tile_matmul_loops(const TileMatmulNode& t, const Buffer& c, const Buffer& a, const Buffer& b) {
  Var i("tile_i"), j("tile_j"), k("tile_k");
  int64_t g = vnni_group(a->dtype);
  DType acc = c->dtype;
  Expr at = t.c.offset + Expr(i) * make_int(t.c.row_stride) + j;
  Expr av = cast(acc, load(a, {t.a.offset + Expr(i) * make_int(t.a.row_stride) + k}));
  Expr bv = cast(acc, load(b, {t.b.offset + (Expr(k) / make_int(g)) * make_int(t.b.row_stride) + Expr(j) * make_int(g) +
                               Expr(k) % make_int(g)}));
  Stmt update = make_for(k, make_int(0), make_int(t.depth), ForKind::Serial,
                         make_store(c, {at}, load(c, {at}) + av * bv));
  Stmt init = t.accumulate ? nullptr : make_store(c, {at}, make_const(acc, 0));
  return make_for(i, make_int(0), make_int(t.rows), ForKind::Serial,
                  make_for(j, make_int(0), make_int(t.cols), ForKind::Serial, make_seq({init, update})));
}

Stmt tiled_matmul(const Buffer& c, const Buffer& a, const Buffer& b, int64_t m, int64_t n, int64_t k, bool accumulate) {
  if (!tile_types_supported(a->dtype, b->dtype) || c->dtype != tile_accumulator(a->dtype)) return nullptr;
  int64_t g = vnni_group(a->dtype), step = kTileRowBytes / dtype_bytes(a->dtype);
  int64_t cols = kTileRowBytes / dtype_bytes(c->dtype);
  if (k % step) return nullptr;
  std::vector<Stmt> parts;
  // Full 16 x 16 blocks in loops, then the last rows and columns as smaller tiles.
  for (int64_t r0 : {int64_t(0), m / kTileRows * kTileRows}) {
    int64_t rows = r0 == 0 ? kTileRows : m - r0, row_blocks = r0 == 0 ? m / kTileRows : 1;
    if (rows == 0 || row_blocks == 0) continue;
    for (int64_t c0 : {int64_t(0), n / cols * cols}) {
      int64_t width = c0 == 0 ? cols : n - c0, col_blocks = c0 == 0 ? n / cols : 1;
      if (width == 0 || col_blocks == 0) continue;
      Var bi("tile_row_block"), bj("tile_col_block");
      Expr row = make_int(r0) + Expr(bi) * make_int(kTileRows), col = make_int(c0) + Expr(bj) * make_int(cols);
      auto tile = std::make_shared<TileMatmulNode>(TileOperand{c, row * make_int(n) + col, n},
                                                   TileOperand{a, row * make_int(k), k},
                                                   TileOperand{b, col * make_int(g), n * g}, rows, width, k, accumulate);
      parts.push_back(make_for(bi, make_int(0), make_int(row_blocks), ForKind::Serial,
                               make_for(bj, make_int(0), make_int(col_blocks), ForKind::Serial, tile)));
    }
  }
  return make_seq(parts);
}

}  // namespace kiln::tir
