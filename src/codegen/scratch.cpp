#include "codegen/scratch.h"

#include <new>
#include <vector>

#include "kiln/tensor_memory.h"

namespace {

constexpr size_t kAlign = 64;

struct Block {
  void* p;
  size_t bytes;
  bool used;
};

// This thread's blocks; freed when the thread exits.
struct Cache {
  std::vector<Block> blocks;
  ~Cache() {
    for (auto& b : blocks) kiln::free_tensor_memory(b.p, b.bytes);
  }
};

thread_local Cache cache;

}  // namespace

extern "C" void* kiln_scratch_alloc(int64_t bytes) {
  size_t want = (size_t(bytes > 0 ? bytes : 1) + kAlign - 1) / kAlign * kAlign;
  Block* best = nullptr;  // the smallest free block that fits
  Block* spare = nullptr;  // else the largest free one, to be replaced by a larger one
  for (auto& b : cache.blocks) {
    if (b.used) continue;
    if (b.bytes >= want && (!best || b.bytes < best->bytes)) best = &b;
    if (b.bytes < want && (!spare || b.bytes > spare->bytes)) spare = &b;
  }
  if (best) {
    best->used = true;
    return best->p;
  }
  void* p = nullptr;
  try {
    p = kiln::allocate_tensor_memory(want);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  if (spare) {
    kiln::free_tensor_memory(spare->p, spare->bytes);
    *spare = Block{p, want, true};
  } else {
    cache.blocks.push_back(Block{p, want, true});
  }
  return p;
}

extern "C" void kiln_scratch_free(void* p) {
  if (!p) return;
  for (auto& b : cache.blocks)
    if (b.p == p) {
      b.used = false;
      return;
    }
  // Not from this thread's cache: cannot happen, since kernels free their scratch on the
  // thread that took it; leaking it is safer than freeing memory another cache may hold.
}
