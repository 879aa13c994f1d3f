#include "runtime/thread_pool.h"

namespace kiln {

namespace {
thread_local ThreadPool* g_pool = nullptr;

void chunk(int64_t n, int parts, int index, int64_t* begin, int64_t* end) {
  *begin = n * index / parts;
  *end = n * (index + 1) / parts;
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
    int64_t n;
    void (*body)(int64_t, int64_t, void*);
    void* closure;
    {
      std::unique_lock<std::mutex> l(m_);
      wake_.wait(l, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      n = n_;
      body = body_;
      closure = closure_;
    }
    int64_t b, e;
    chunk(n, threads(), index, &b, &e);
    if (b < e) body(b, e, closure);
    {
      std::lock_guard<std::mutex> l(m_);
      if (--pending_ == 0) done_.notify_one();
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
    pending_ = int(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  int64_t b, e;
  chunk(n, threads(), 0, &b, &e);
  if (b < e) body(b, e, closure);
  {
    std::unique_lock<std::mutex> l(m_);
    done_.wait(l, [&] { return pending_ == 0; });
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
