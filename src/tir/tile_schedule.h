// Default schedule of a matrix product on tile hardware (Intel AMX): the product's constant
// B packed in the VNNI layout at compile time, tile products per 16 x 16 block of C
// (tir/tile.h), the stage's epilogue applied to C afterwards.
#pragma once
#include "tir/reduction_schedule.h"

namespace kiln::tir {

// For dst[..., m, n] = sum_k f32(A[..., m, k]) * f32(B[k, n] or B[n, k]) with A bf16 (leading
// dims those of dst), B a bf16 compile-time constant and K a multiple of 32: the tiled nest. Null for
// any other reduction (the vector schedules take it).
Stmt schedule_bf16_tiles(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                         const Epilogue& epilogue, const BufferSet& constants);

}  // namespace kiln::tir
