// Default schedules for reduction stages (the MatMul / Conv / pooling / reduce family).
//
// Every schedule keeps each output element's terms in the same order as the plain
// "for outputs: for reduce axes" nest; only the order in which outputs are visited changes.
#pragma once
#include <set>

#include "tir/compute.h"

namespace kiln::tir {

// Loop nest computing `dst` = reduction `r` over output axes `axes`, scheduled for the target:
// - register-tiled: a block of ri x vj outputs (one blocked outer axis times the innermost
//   axis) accumulates in registers across the whole reduction; the block loops are unrolled
//   so LLVM keeps the accumulators in vector registers and emits FMAs;
// - row accumulation: the innermost output axis moves inside the reduce loops so the inner
//   loop vectorizes (also used for the tiles' remainders);
// - plain: one scalar accumulator per output.
struct VectorTarget {
  int vector_bytes = 32;     // 32: AVX2, 64: AVX-512
  int vector_registers = 16;
  bool tiles_bf16 = false;   // bf16 products on tile hardware (AMX; tir/tile_schedule.h)
  bool tiles_int8 = false;   // 8-bit products on tile hardware
  int64_t l2_bytes = 512 * 1024;  // per core (tile products keep groups of B's panels in it)
  int threads = 1;           // the kernels' parallel loops split over this many (block sizes balance them)
};
// An elementwise consumer applied to each result as it is stored (a fused epilogue: bias,
// batch-norm scale, activation, residual add...): `value` is the stored value in terms of the
// output axes and of `result`, the reduction's value.
struct Epilogue {
  Expr value;
  Var result;
};
// Buffers known at compile time: a tile may vectorize an axis other than the innermost only
// when the operand it packs is one of them (packed once, at compile time).
using BufferSet = std::set<const BufferNode*>;
Stmt schedule_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                        const VectorTarget& target, const Epilogue& epilogue = {},
                        const BufferSet& constants = {});

}  // namespace kiln::tir
