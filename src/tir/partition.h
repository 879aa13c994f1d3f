// Loop partitioning (as TVM's LoopPartition): a loop whose body compares its variable with
// constants (the bounds tests of a zero-padded copy, the clamps that keep a guarded read in
// bounds) is split into the ranges over which every such test has one outcome, and each
// range's body is simplified with those outcomes known. The interior of a padded copy then
// becomes a plain contiguous (vectorizable) copy and its border a store of the pad value.
#pragma once
#include "tir/stmt.h"

namespace kiln::tir {

// Partitions the serial loops of `s` with constant bounds, outermost first (an inner loop's
// tests are decided knowing its outer loops' ranges). A loop is split into at most
// `max_pieces` ranges; one that would need more stays whole.
Stmt partition_loops(const Stmt& s, int max_pieces = 5);

}  // namespace kiln::tir
