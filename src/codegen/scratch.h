// Scratch memory of generated kernels: the buffers too large for the stack (a convolution's
// padded copy, Winograd's transformed tiles, operands packed at run time), and the runtime's
// arena of intermediates.
//
// Each thread keeps the blocks it was given and hands them out again: malloc and free per run
// gave large blocks back to the OS at every free (glibc unmaps them, or trims the top of the
// heap), so every run faulted them in again, zeroed by the kernel page by page. PP-OCRv4
// detection, whose Winograd convolutions take 27 MB of scratch, paid 17,000 page faults
// (68 MB) per run: up to a quarter of its time when the shared host was busy (167.7 against
// 122.7 ms), nothing measurable when it was quiet (89.4 against 91.5 ms). Allocations nest (a kernel frees them in
// reverse order), so a thread holds at most as many blocks as its deepest nesting, each as
// large as the largest request it served: memory a thread used once stays with it until it
// exits, as an arena would.
#pragma once
#include <cstdint>

extern "C" {
// A block of at least `bytes` bytes, 64-byte aligned, or null when memory is exhausted.
void* kiln_scratch_alloc(int64_t bytes);
// Gives the block back to this thread's cache (null: nothing).
void kiln_scratch_free(void* p);
}

namespace kiln::codegen {

// A scratch block for one scope (the runtime's arena of a run).
class ScratchBlock {
 public:
  explicit ScratchBlock(int64_t bytes) : p_(bytes > 0 ? kiln_scratch_alloc(bytes) : nullptr) {}
  ~ScratchBlock() { kiln_scratch_free(p_); }
  ScratchBlock(const ScratchBlock&) = delete;
  ScratchBlock& operator=(const ScratchBlock&) = delete;
  void* get() const { return p_; }

 private:
  void* p_;
};

}  // namespace kiln::codegen
