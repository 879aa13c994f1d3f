// Structural equivalence of kernels: the same loop nests over buffers of the same types and
// shapes, up to the names of buffers, variables and the function. Equivalent kernels (every
// layer of a transformer, repeated ResNet blocks) are compiled once.
#pragma once
#include "tir/stmt.h"

namespace kiln::tir {

bool equivalent(const PrimFunc& a, const PrimFunc& b);

// A cheap key that equivalent kernels share (parameter types and shapes, statement counts),
// for bucketing before the full comparison.
std::string equivalence_key(const PrimFunc& f);

}  // namespace kiln::tir
