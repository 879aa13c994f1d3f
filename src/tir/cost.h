// Static cost of a kernel, for profiles: arithmetic done and the bytes its arguments occupy.
#pragma once
#include "tir/stmt.h"

namespace kiln::tir {

struct KernelCost {
  int64_t flops = 0;  // floating-point adds, subtracts, multiplies, divides, mins and maxes
  int64_t bytes = 0;  // sizes of the parameters: the traffic the kernel cannot avoid
};

// Counts the float operations of every stored value times the trip counts of the loops
// around it (the larger branch of an if); packing and copy loops count bytes only.
KernelCost estimate_cost(const PrimFunc& f);

}  // namespace kiln::tir
