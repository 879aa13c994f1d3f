// Default schedule of a matrix product on tiles (Intel AMX; 8-bit ones also on AVX2): B packed
// in the VNNI layout (at compile time when constant), tile products per 32 x 32 block of C
// (tir/tile.h), the rest of the stage (bias, zero-point correction, epilogue) applied to C
// afterwards.
#pragma once
#include "tir/reduction_schedule.h"

namespace kiln::tir {

// The tiled nest for
//   dst[..., m, n] = init(n) + sum_k f32(A[..., m, k]) * f32(B[..., k, n] or B[..., n, k])   (bf16)
//   dst[..., m, n] = init(n) + sum_k (i32(A[..., m, k]) - za) * i32(B[..., k, n] or ...)  (u8/s8 A, s8 B)
// with A's leading dims those of dst (or broadcast) and K a multiple of a tile row (32 bf16 /
// 64 int8 values). B is packed in the VNNI layout at compile time when it is a constant, on
// every run (per batch index when it has leading dims) when it is an activation (attention);
// the int8 form is computed as A·B minus za times B's column sums. Null for any other
// reduction, or when `target` does not take tiles for its types.
Stmt schedule_tiles(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r, const VectorTarget& target,
                    const Epilogue& epilogue, const BufferSet& constants);

}  // namespace kiln::tir
