#include "kiln/tensor_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace kiln {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kPage = 4096;
constexpr size_t kAlign = 64;
// Blocks from this size on are kept for reuse when freed, at most kCacheBytes in all. A model's
// outputs are allocated on every run; glibc maps blocks this large afresh each time, and every
// run faulted them in (and the OS zeroed them) again.
constexpr size_t kCachedFrom = size_t(128) << 10;
constexpr size_t kCacheBytes = size_t(64) << 20;

size_t rounded_up(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }
// Blocks are kept and matched by this size: whole huge pages from 2 MiB on, whole pages below.
size_t block_size(size_t bytes) { return rounded_up(bytes, bytes >= kHugePage ? kHugePage : kPage); }

struct FreeBlocks {
  std::mutex mutex;
  std::vector<std::pair<void*, size_t>> blocks;  // (block, rounded size), oldest first
  size_t bytes = 0;
};

FreeBlocks& free_blocks() {
  static FreeBlocks* cache = new FreeBlocks;  // never destroyed: threads may free at exit
  return *cache;
}

}  // namespace

void* allocate_tensor_memory(size_t bytes) {
  if (bytes < kCachedFrom) {
    void* p = std::aligned_alloc(kAlign, rounded_up(std::max<size_t>(bytes, 1), kAlign));
    if (!p) throw std::bad_alloc();
    return p;
  }
  size_t rounded = block_size(bytes);
  {
    auto& cache = free_blocks();
    std::lock_guard lock(cache.mutex);
    for (size_t i = 0; i < cache.blocks.size(); ++i)
      if (cache.blocks[i].second == rounded) {
        void* p = cache.blocks[i].first;
        cache.bytes -= rounded;
        cache.blocks.erase(cache.blocks.begin() + i);
        return p;
      }
  }
  if (rounded < kHugePage) {
    void* p = std::aligned_alloc(kPage, rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  // Whole huge pages (a partial last one could not be one), on a huge page boundary.
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (!p) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // a hint; failure changes nothing
  return p;
}

void free_tensor_memory(void* p, size_t bytes) {
  if (!p) return;
  if (bytes < kCachedFrom) return std::free(p);
  size_t rounded = block_size(bytes);
  auto& cache = free_blocks();
  std::lock_guard lock(cache.mutex);
  if (rounded > kCacheBytes) return std::free(p);
  while (cache.bytes + rounded > kCacheBytes) {
    std::free(cache.blocks.front().first);
    cache.bytes -= cache.blocks.front().second;
    cache.blocks.erase(cache.blocks.begin());
  }
  cache.blocks.emplace_back(p, rounded);
  cache.bytes += rounded;
}

}  // namespace kiln
