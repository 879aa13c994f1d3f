// Default schedule decisions applied to lowered kernels (IR -> IR functions).
#pragma once
#include <set>

#include "tir/stmt.h"

namespace kiln::tir {

// Whether `n` iterations split into equal contiguous chunks keep less than 95% of `threads`
// busy (9 channel blocks on 2 threads: 5 + 4; 9 x 522 row tiles split evenly).
bool leaves_threads_idle(int64_t n, int threads);

// Marks the outermost loop of every top-level loop nest parallel when it has at least two
// iterations and the nest does at least `min_work` iterations; nests are found through the
// kernel's sequence and scratch allocations only, so no parallel loop is nested in another.
// With `threads` > 1, an outer loop whose iterations would leave threads idle (3 on 2
// threads) is first fused with the loops directly inside it.
Stmt parallelize_outer_loops(const Stmt& s, int64_t min_work, int threads = 1);

}  // namespace kiln::tir

namespace kiln::tir {

// A scratch buffer whose contents depend only on constant inputs (a packed weight panel): the
// loop nest filling it, as its own function, so the compiler can run it once at compile time.
struct ConstantFill {
  Buffer buffer;
  PrimFunc fill;  // params: the constant buffers it reads, then `buffer`
};

// Moves out of `f` every scratch allocation whose first statement fills it from `constants`
// only (reading nothing else); each such buffer becomes a new input of `f`, placed after its
// existing inputs (`num_inputs` of them). Returns the fills, in the order of the new params.
std::vector<ConstantFill> hoist_constant_fills(PrimFunc* f, size_t num_inputs,
                                               const std::set<const BufferNode*>& constants);

}  // namespace kiln::tir
