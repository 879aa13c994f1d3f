// Static memory plan for intermediates: every temporary buffer gets an offset in one arena,
// and buffers whose lifetimes (first to last kernel using them) do not overlap share space.
#pragma once
#include <cstddef>
#include <vector>

namespace kiln {

struct Lifetime {
  size_t bytes;
  int first, last;  // step indices, inclusive
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // per lifetime, aligned to `alignment`
  size_t arena_bytes = 0;       // peak: the arena holding all of them
  size_t unshared_bytes = 0;    // what one buffer each would take
};

// Greedy best-fit by decreasing size (as TVM's and TFLite's planners do): each buffer takes
// the lowest offset where it overlaps no placed buffer that is alive at the same time.
MemoryPlan plan_memory(const std::vector<Lifetime>& buffers, size_t alignment = 64);

}  // namespace kiln
