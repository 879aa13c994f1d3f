#include "tir/tile.h"

#include <algorithm>

namespace kiln::tir {

int64_t vnni_group(DType t) { return 4 / dtype_bytes(t); }

DType tile_accumulator(DType a) { return a == DType::BF16 ? DType::F32 : DType::I32; }

bool tile_types_supported(DType a, DType b) {
  if (a == DType::BF16) return b == DType::BF16;
  auto byte = [](DType t) { return t == DType::U8 || t == DType::I8; };
  return byte(a) && byte(b);  // tdpbssd, tdpbsud, tdpbusd, tdpbuud
}

Expr vnni_index(const Expr& k, const Expr& n, int64_t n_extent, int64_t group) {
  return (k / make_int(group)) * make_int(n_extent * group) + n * make_int(group) + k % make_int(group);
}

Expr vnni_panel_index(const Expr& k, const Expr& n, int64_t k_extent, int64_t group) {
  Expr panel = n / make_int(kPanelColumns), column = n % make_int(kPanelColumns);
  return panel * make_int(k_extent * kPanelColumns) + (k / make_int(group)) * make_int(kPanelColumns * group) +
         column * make_int(group) + k % make_int(group);
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

Stmt tiled_matmul(const Buffer& c, const Buffer& a, const Buffer& b, int64_t m, int64_t n, int64_t k, bool accumulate,
                  const Expr& c_base, const Expr& a_base, const Expr& b_base, int64_t b_columns, bool b_panels,
                  int64_t group_bytes, const BlockFinish& finish) {
  if (b_columns == 0) b_columns = vnni_columns(n);
  if (!tile_types_supported(a->dtype, b->dtype) || c->dtype != tile_accumulator(a->dtype)) return nullptr;
  int64_t g = vnni_group(a->dtype), step = kTileRowBytes / dtype_bytes(a->dtype);
  int64_t cols = kTileRowBytes / dtype_bytes(c->dtype);
  if (k % step) return nullptr;
  // Full 32 x 32 blocks in loops, then the last rows and columns as smaller ones.
  struct Band {
    int64_t start, size, count;
  };
  auto bands = [](int64_t extent, int64_t full) {
    std::vector<Band> b;
    if (extent / full) b.push_back({0, full, extent / full});
    if (extent % full) b.push_back({extent / full * full, extent % full, 1});
    return b;
  };
  int64_t block_rows = kTileBlock * kTileRows, block_cols = kTileBlock * cols;
  if (b_panels && block_cols != kPanelColumns) return nullptr;
  // Every row band against the column band `w`, whose first column is `col0` plus the loop's.
  int band = 0;
  auto rows_against = [&](const Band& w, const Expr& col0) {
    std::vector<Stmt> parts;
    for (const Band& r : bands(m, block_rows)) {
      Var bi("tile_row_block"), bj("tile_col_block");
      Expr row = make_int(r.start) + Expr(bi) * make_int(block_rows);
      Expr col = col0 + make_int(w.start) + Expr(bj) * make_int(block_cols);
      TileOperand b_op = b_panels ? TileOperand{b, b_base + (col / make_int(kPanelColumns)) * make_int(k * kPanelColumns),
                                                kPanelColumns * g}
                                   : TileOperand{b, b_base + col * make_int(g), b_columns * g};
      TileOperand c_op = finish ? TileOperand{c, make_int(0), block_cols} : TileOperand{c, c_base + row * make_int(n) + col, n};
      Stmt tile = std::make_shared<TileMatmulNode>(c_op, TileOperand{a, a_base + row * make_int(k), k}, b_op, r.size, w.size,
                                                   k, accumulate);
      if (finish) tile = make_allocate(c, make_seq({tile, finish(row, r.size, col, w.size, band++)}));
      parts.push_back(make_for(bi, make_int(0), make_int(r.count), ForKind::Serial,
                               make_for(bj, make_int(0), make_int(w.count), ForKind::Serial, tile)));
    }
    return make_seq(parts);
  };
  std::vector<Band> col_bands = bands(n, block_cols);
  int64_t panel_bytes = k * kPanelColumns * dtype_bytes(b->dtype);
  int64_t per_group = group_bytes > 0 ? std::max<int64_t>(1, group_bytes / panel_bytes) : 0;
  if (!b_panels || per_group == 0 || n / block_cols <= per_group) {
    std::vector<Stmt> parts;
    for (const Band& w : col_bands) parts.push_back(rows_against(w, make_int(0)));
    return make_seq(parts);
  }
  // B's full panels in groups of `per_group` (the last group may be smaller), then the partial
  // panel at the right edge, if any.
  int64_t full = n / block_cols, groups = full / per_group, rest = full % per_group;
  Var gi("tile_panel_group");
  std::vector<Stmt> parts{make_for(gi, make_int(0), make_int(groups), ForKind::Serial,
                                   rows_against({0, block_cols, per_group}, Expr(gi) * make_int(per_group * block_cols)))};
  if (rest) parts.push_back(rows_against({groups * per_group * block_cols, block_cols, rest}, make_int(0)));
  if (n % block_cols) parts.push_back(rows_against(col_bands.back(), make_int(0)));
  return make_seq(parts);
}

}  // namespace kiln::tir
