// A fixed set of worker threads that split a range into one contiguous slice per thread.
// The split depends only on the range and the thread count, never on timing, so work that
// reduces within a slice gives the same bits on every run.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace medlab {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1; the caller's thread is one of them
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint slices covering [0, n), one slice per thread, and waits.
  // Slices start at multiples of `grain` so that vector kernels keep their alignment.
  template <class Fn>
  void parallel_for(int64_t n, Fn&& fn, int64_t grain = 1) {
    run(n, grain, &invoke<Fn>, &fn);
  }

 private:
  using Trampoline = void (*)(void* fn, int64_t begin, int64_t end);
  template <class Fn>
  static void invoke(void* fn, int64_t begin, int64_t end) {
    (*static_cast<Fn*>(fn))(begin, end);
  }
  void run(int64_t n, int64_t grain, Trampoline trampoline, void* fn);
  void slice(int thread, int64_t& begin, int64_t& end) const;
  void worker(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  // Hand-off without locks: a job is published by bumping generation_, and pending_ counts the workers
  // still on it. Waiters spin briefly (decode issues hundreds of small jobs per token), then sleep in
  // the kernel on the atomic (a futex on Linux).
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  // The job in flight, written before generation_ is bumped.
  int64_t n_ = 0, grain_ = 1;
  Trampoline trampoline_ = nullptr;
  void* fn_ = nullptr;
};

}  // namespace medlab
