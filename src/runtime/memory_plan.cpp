#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace kiln {

MemoryPlan plan_memory(const std::vector<Lifetime>& buffers, size_t alignment) {
  auto align = [&](size_t n) { return (n + alignment - 1) / alignment * alignment; };
  MemoryPlan plan;
  plan.offsets.assign(buffers.size(), 0);
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  std::vector<size_t> placed;
  for (size_t i : order) {
    const Lifetime& b = buffers[i];
    size_t size = align(std::max<size_t>(b.bytes, 1));
    plan.unshared_bytes += size;
    // Intervals already taken by buffers alive at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t j : placed) {
      const Lifetime& o = buffers[j];
      if (o.last < b.first || b.last < o.first) continue;
      busy.push_back({plan.offsets[j], plan.offsets[j] + align(std::max<size_t>(o.bytes, 1))});
    }
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    for (auto& [lo, hi] : busy) {
      if (offset + size <= lo) break;
      offset = std::max(offset, hi);
    }
    plan.offsets[i] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(i);
  }
  return plan;
}

}  // namespace kiln
