// Matrix-tile products (TileMatmulNode, tir/stmt.h): the layout their B operand is packed
// in, the plain loops that define them, and a matmul nest built from them.
//
// The tile sizes are Intel AMX's: a tile holds up to 16 rows of 64 bytes, so one product
// covers up to 16 x 16 outputs (f32 / i32) and 64 bytes of each A row per instruction
// (32 bf16 or 64 int8 values), with B's rows holding `group` consecutive k values per output
// column (the VNNI layout).
#pragma once
#include <functional>

#include "tir/stmt.h"

namespace kiln::tir {

inline constexpr int64_t kTileRows = 16;      // rows of a tile register
inline constexpr int64_t kTileRowBytes = 64;  // bytes of a tile row
// A tile product covers up to 2 x 2 tiles of C: 4 accumulator, 2 A and 2 B registers (all 8
// AMX has), so each loaded A and B tile serves two multiplies.
inline constexpr int64_t kTileBlock = 2;
// Elements of one tile product's C block (32 x 32 of f32 / i32).
inline constexpr int64_t kBlockElements = kTileBlock * kTileRows * kTileBlock * kTileRows;

// Consecutive k values B packs per 32-bit lane for A elements of type `t` (bf16: 2, int8: 4).
int64_t vnni_group(DType t);
// Element type a tile product accumulates in: f32 for bf16 operands, i32 for 8-bit ones.
DType tile_accumulator(DType a);
// Whether `a` x `b` is a product tiles compute (bf16 x bf16, u8/s8 x s8).
bool tile_types_supported(DType a, DType b);

// Columns a packed B row holds for N columns: N rounded up to 8, so that 8-column vector
// reads of the last columns stay inside the row (the extra columns are never stored).
inline int64_t vnni_columns(int64_t n) { return (n + 7) / 8 * 8; }
// Index of element (k, n) of a K x N matrix in its VNNI packing [K / g][N'][g] (K a multiple
// of g, N' = vnni_columns(N) passed as n_extent).
Expr vnni_index(const Expr& k, const Expr& n, int64_t n_extent, int64_t group);

// Columns of one panel of the panel-major VNNI packing: a tile product's block of C columns.
inline constexpr int64_t kPanelColumns = 32;
// Elements of the panel-major packing of a K x N matrix: N rounded up to whole panels.
inline int64_t vnni_panel_elements(int64_t k, int64_t n) { return k * ((n + kPanelColumns - 1) / kPanelColumns * kPanelColumns); }
// Index of element (k, n) in the panel-major VNNI packing [N / 32][K / g][32][g]: each tile
// product's B is one contiguous block (K * 32 elements), so the k loop walks memory in order
// instead of one page per k group (a row-major packing of 3072 columns strides 12 KiB).
Expr vnni_panel_index(const Expr& k, const Expr& n, int64_t k_extent, int64_t group);

// The tile product as plain loops over flat (1-D) views of its buffers: its definition, and
// the code for targets without tile instructions.
Stmt tile_matmul_loops(const TileMatmulNode& t, const Buffer& c_flat, const Buffer& a_flat, const Buffer& b_flat);

// C[M x N] (=, or += with `accumulate`) A[M x K] * B, B packed by vnni_index with
// `b_columns` columns per row (default vnni_columns(N); K / g x columns x g elements), all
// row-major and addressed flat from element offsets `c_base` / `a_base` / `b_base` (B's
// offset in elements: g times its first column), as one tile product per 32 x 32 block of C
// (2 x 2 tiles; smaller at the edges). K must be a multiple of a tile row (32 bf16 / 64 int8
// values). Returns null when the types or K do not fit. With `b_panels`, B is packed by
// vnni_panel_index instead (b_base then in elements too, b_columns ignored), and when B's
// panels exceed `group_bytes` (> 0) they run in groups of at most that many bytes, outermost:
// every row block then passes over one group at a time, which stays in L2 (B is read from
// memory once instead of once per 32 rows), and A is read once per group.
//
// With `finish`, C is never stored whole: `c` is a buffer of one 32 x 32 block (row stride 32),
// allocated inside the loops (one per thread), and each product into it is followed by
// finish(row0, rows, col0, cols, band): the statement that reads the block's rows x cols results
// (c[i * 32 + j]) and stores them for C's rows [row0, row0 + rows), columns [col0, col0 + cols),
// while they are in L1. `band` numbers the distinct nests (for unique loop names).
using BlockFinish = std::function<Stmt(const Expr& row0, int64_t rows, const Expr& col0, int64_t cols, int band)>;
Stmt tiled_matmul(const Buffer& c, const Buffer& a, const Buffer& b_vnni, int64_t m, int64_t n, int64_t k,
                  bool accumulate, const Expr& c_base = make_int(0), const Expr& a_base = make_int(0),
                  const Expr& b_base = make_int(0), int64_t b_columns = 0, bool b_panels = false,
                  int64_t group_bytes = 0, const BlockFinish& finish = nullptr);

}  // namespace kiln::tir
