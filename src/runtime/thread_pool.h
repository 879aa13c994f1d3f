// The persistent worker pool generated code calls into for parallel loops.
//
// Generated kernels call kiln_parallel_for(n, body, closure); it splits [0, n) into one
// contiguous chunk per thread of the pool bound to the calling thread (see PoolScope), or runs
// the whole range inline when no pool is bound, the pool has one thread, or it is busy with
// another call (so concurrent Model::run calls never deadlock or oversubscribe).
//
// A model runs many short parallel loops back to back (a BERT layer: dozens, some of tens of
// microseconds), so waking a sleeping thread for each (a futex round trip, tens of
// microseconds on a VM) would cost as much as the work. Workers and the caller therefore spin
// for a short while (kSpin) on the next loop or on the others finishing, and only then sleep
// on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

extern "C" void kiln_parallel_for(int64_t n, void (*body)(int64_t begin, int64_t end, void* closure), void* closure);

namespace kiln {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads including the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }
  void parallel_for(int64_t n, void (*body)(int64_t, int64_t, void*), void* closure);

 private:
  void worker(int index);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // one parallel_for at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};  // one more per parallel_for
  std::atomic<int> pending_{0};          // workers still running the current loop
  std::atomic<bool> stop_{false};
  int64_t n_ = 0;
  void (*body_)(int64_t, int64_t, void*) = nullptr;
  void* closure_ = nullptr;
};

// Binds a pool to the current thread for the scope's lifetime (Model::run does this).
class PoolScope {
 public:
  explicit PoolScope(ThreadPool* pool);
  ~PoolScope();

 private:
  ThreadPool* previous_;
};

}  // namespace kiln
