#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace medlab {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1 || n_threads > 1024) fail("threads: ", n_threads, " is not between 1 and 1024");
  for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

namespace {

// Waits until value != seen: spins for up to kSpin with the CPU's pause hint, then sleeps until notified.
// A decode step hands out hundreds of jobs with short serial gaps between them, and waking a sleeping thread
// costs tens of microseconds (more in a VM); a spin of 4096 pauses, 10-15 us on Zen 4, let the workers
// sleep in those gaps and cost q4_0 decode a sixth of its speed.
constexpr auto kSpin = std::chrono::milliseconds(1);

template <class T>
T wait_for_change(const std::atomic<T>& value, T seen) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int spin = 1;; ++spin) {
    const T now = value.load(std::memory_order_acquire);
    if (now != seen) return now;
    __builtin_ia32_pause();
    if (spin % 256 == 0 && std::chrono::steady_clock::now() > deadline) break;
  }
  for (;;) {
    value.wait(seen, std::memory_order_acquire);
    const T now = value.load(std::memory_order_acquire);
    if (now != seen) return now;
  }
}

}  // namespace

void ThreadPool::slice(int thread, int64_t& begin, int64_t& end) const {
  const int64_t units = (n_ + grain_ - 1) / grain_;
  const int64_t per = units / n_threads_, extra = units % n_threads_;
  const int64_t first = thread * per + std::min<int64_t>(thread, extra);
  const int64_t count = per + (thread < extra ? 1 : 0);
  begin = std::min(n_, first * grain_);
  end = std::min(n_, (first + count) * grain_);
}

void ThreadPool::work(int thread) {
  if (!chunks_) {
    int64_t begin, end;
    slice(thread, begin, end);
    if (begin < end) trampoline_(fn_, begin, end);
    return;
  }
  for (;;) {
    const int64_t begin = next_chunk_.fetch_add(1, std::memory_order_relaxed) * grain_;
    if (begin >= n_) return;
    trampoline_(fn_, begin, std::min(n_, begin + grain_));
  }
}

void ThreadPool::run(int64_t n, int64_t grain, bool chunks, Trampoline trampoline, void* fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n_threads_ == 1 || n <= grain) {  // one piece of work: waking the workers would only add a wait
    trampoline(fn, 0, n);
    return;
  }
  if (chunks) {
    constexpr int64_t kChunksPerThread = 8;
    const int64_t units = (n + grain - 1) / grain;
    grain *= std::max<int64_t>(1, units / (kChunksPerThread * n_threads_));
  }
  n_ = n;
  grain_ = grain;
  chunks_ = chunks;
  next_chunk_.store(0, std::memory_order_relaxed);
  trampoline_ = trampoline;
  fn_ = fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  work(0);
  while (const int left = pending_.load(std::memory_order_acquire)) wait_for_change(pending_, left);
}

void ThreadPool::worker(int thread) {
  uint32_t seen = 0;
  for (;;) {
    seen = wait_for_change(generation_, seen);
    if (stopping_.load()) return;
    work(thread);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace medlab
