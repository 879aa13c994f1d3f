#include "runtime/thread_pool.h"

#include <chrono>

namespace kiln {

namespace {
thread_local ThreadPool* g_pool = nullptr;

void chunk(int64_t n, int parts, int index, int64_t* begin, int64_t* end) {
  *begin = n * index / parts;
  *end = n * (index + 1) / parts;
}

// How long a thread polls before sleeping: longer than the gap between two kernels' loops,
// short enough that an idle pool stops burning its cores at once.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls `done` until it holds or kSpin has passed; returns whether it holds.
template <typename F> bool spin_until(F done) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() - start > kSpin) return done();
  }
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto woken = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(woken)) {
      std::unique_lock<std::mutex> l(m_);
      wake_.wait(l, woken);
    }
    if (stop_) return;
    // The loop's fields were written before generation_ was raised (release) and stay put
    // until every worker has decremented pending_.
    seen = generation_.load(std::memory_order_acquire);
    int64_t b, e;
    chunk(n_, threads(), index, &b, &e);
    if (b < e) body_(b, e, closure_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> l(m_);
      done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, void (*body)(int64_t, int64_t, void*), void* closure) {
  if (workers_.empty() || n < 2 || !busy_.try_lock()) {
    body(0, n, closure);
    return;
  }
  {
    std::lock_guard<std::mutex> l(m_);
    n_ = n;
    body_ = body;
    closure_ = closure;
    pending_.store(int(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  int64_t b, e;
  chunk(n, threads(), 0, &b, &e);
  if (b < e) body(b, e, closure);
  auto finished = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(finished)) {
    std::unique_lock<std::mutex> l(m_);
    done_.wait(l, finished);
  }
  busy_.unlock();
}

PoolScope::PoolScope(ThreadPool* pool) : previous_(g_pool) { g_pool = pool; }
PoolScope::~PoolScope() { g_pool = previous_; }

}  // namespace kiln

extern "C" void kiln_parallel_for(int64_t n, void (*body)(int64_t, int64_t, void*), void* closure) {
  if (kiln::g_pool) kiln::g_pool->parallel_for(n, body, closure);
  else body(0, n, closure);
}
