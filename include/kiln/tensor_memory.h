// Memory for tensor bytes (HostTensor, the run's arena, kernels' scratch).
//
// Blocks of 2 MiB and more are aligned to 2 MiB and marked for transparent huge pages
// (madvise(MADV_HUGEPAGE); Debian's default THP mode honours only marked memory). Kernels walk
// large operands with strides of whole rows: a 2048x2048 f32 product touches 2048 rows of A and
// C, 8 KiB apart, for every 128 columns of B, so with 4 KiB pages nearly every row costs a TLB
// miss (the L2 TLB of Zen 3 holds 2048 pages). On 2 MiB pages kiln's 2048^3 GEMM ran 6-20% faster
// (1 thread: 316-333 -> 268-305 ms; ResNet-50's sum of kernel minima 101.9 -> 95.7 ms, its
// Winograd convolutions 13-19% faster). The advice is a hint: where THP is off it changes nothing.
//
// Freed blocks of 128 KiB and more are kept (64 MiB at most, the oldest given back first) and
// handed out again for the same size: a model's outputs are allocated by every run, and glibc
// mapped such blocks afresh, so each run faulted them in (and the OS zeroed them) again.
#pragma once
#include <cstddef>
#include <new>
#include <utility>

namespace kiln {

void* allocate_tensor_memory(size_t bytes);         // 64-byte aligned; throws std::bad_alloc
void free_tensor_memory(void* p, size_t bytes);     // `bytes` as allocated

// std::vector's allocator for tensor bytes. Elements made without a value are left as they
// are (default-initialized), not zeroed: a vector sized for a model output that a kernel then
// writes in full would otherwise be cleared on every run (GEMM 256^3 at 2 threads: 0.103-0.107
// -> 0.085-0.092 ms). HostTensor zeroes its bytes itself where it promises zeros.
template <class T>
struct TensorAllocator {
  using value_type = T;
  TensorAllocator() = default;
  template <class U> TensorAllocator(const TensorAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_tensor_memory(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_tensor_memory(p, n * sizeof(T)); }
  template <class U> void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <class U, class... A> void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <class U> bool operator==(const TensorAllocator<U>&) const { return true; }
};

}  // namespace kiln
