// Default schedule decisions applied to lowered kernels (IR -> IR functions).
#pragma once
#include "tir/stmt.h"

namespace kiln::tir {

// Estimated innermost iterations executed by `s` (loops multiply, sequences add).
int64_t estimate_work(const Stmt& s);

// Marks the outermost loop of every top-level loop nest parallel when it has at least two
// iterations and the nest does at least `min_work` iterations; nests are found through the
// kernel's sequence and scratch allocations only, so no parallel loop is nested in another.
Stmt parallelize_outer_loops(const Stmt& s, int64_t min_work);

}  // namespace kiln::tir
