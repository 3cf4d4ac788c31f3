#include "core/thread_pool.h"

#include <algorithm>

#include "core/error.h"

namespace medlab {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1 || n_threads > 1024) fail("threads: ", n_threads, " is not between 1 and 1024");
  for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::slice(int thread, int64_t& begin, int64_t& end) const {
  const int64_t units = (n_ + grain_ - 1) / grain_;
  const int64_t per = units / n_threads_, extra = units % n_threads_;
  const int64_t first = thread * per + std::min<int64_t>(thread, extra);
  const int64_t count = per + (thread < extra ? 1 : 0);
  begin = std::min(n_, first * grain_);
  end = std::min(n_, (first + count) * grain_);
}

void ThreadPool::run(int64_t n, int64_t grain, Trampoline trampoline, void* fn) {
  if (n <= 0) return;
  if (n_threads_ == 1) {
    trampoline(fn, 0, n);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    n_ = n;
    grain_ = std::max<int64_t>(grain, 1);
    trampoline_ = trampoline;
    fn_ = fn;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  start_.notify_all();
  int64_t begin, end;
  slice(0, begin, end);
  if (begin < end) trampoline(fn, begin, end);
  std::unique_lock lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadPool::worker(int thread) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock lock(mutex_);
    start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    int64_t begin, end;
    slice(thread, begin, end);
    lock.unlock();
    if (begin < end) trampoline_(fn_, begin, end);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

}  // namespace medlab
