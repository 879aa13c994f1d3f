// Static cost of a kernel, for profiles: arithmetic done and the bytes its arguments occupy.
#pragma once
#include "tir/stmt.h"

namespace kiln::tir {

struct KernelCost {
  int64_t flops = 0;  // float adds, subtracts, multiplies, divides, mins, maxes; i32 ones of quantized kernels
  int64_t bytes = 0;  // sizes of the parameters: the traffic the kernel cannot avoid
};

// Sum of `per_store` over every store `s` executes (and of `per_tile` over its tile products):
// loops multiply by their (constant) extents, sequences add, an if counts its larger branch.
int64_t sum_over_stores(const Stmt& s, const std::function<int64_t(const StoreNode*)>& per_store,
                        const std::function<int64_t(const TileMatmulNode*)>& per_tile = nullptr);

// Innermost statements executed by `s` (stores, weighted by trip counts; a tile product counts
// its multiply-adds).
int64_t estimate_work(const Stmt& s);

// Counts the float operations of every stored value times the trip counts of the loops
// around it (the larger branch of an if); packing and copy loops count bytes only.
KernelCost estimate_cost(const PrimFunc& f);

}  // namespace kiln::tir
