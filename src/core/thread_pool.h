// A fixed set of worker threads that split a range among themselves, either into one contiguous slice per
// thread or into chunks taken as threads come free. A slice depends only on the range and the thread count,
// never on timing, so work that reduces within a slice gives the same bits on every run.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
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
    run(n, grain, false, &invoke<std::remove_reference_t<Fn>>, &fn);
  }

  // Calls fn(begin, end) on chunks covering [0, n), about eight per thread and multiples of `grain` long,
  // that the threads take in turn as they come free, and waits. A thread slowed by the hypervisor or a busy
  // sibling core then no longer holds the others up at the end of the job. Only for work whose results do
  // not depend on the split or on which thread runs a chunk, such as the rows of a matrix product.
  template <class Fn>
  void parallel_chunks(int64_t n, Fn&& fn, int64_t grain = 1) {
    run(n, grain, true, &invoke<std::remove_reference_t<Fn>>, &fn);
  }

 private:
  using Trampoline = void (*)(void* fn, int64_t begin, int64_t end);
  template <class Fn>
  static void invoke(void* fn, int64_t begin, int64_t end) {
    (*static_cast<Fn*>(fn))(begin, end);
  }
  void run(int64_t n, int64_t grain, bool chunks, Trampoline trampoline, void* fn);
  void slice(int thread, int64_t& begin, int64_t& end) const;
  void work(int thread);
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
  bool chunks_ = false;  // grain_ is then the chunk's length
  std::atomic<int64_t> next_chunk_{0};
  Trampoline trampoline_ = nullptr;
  void* fn_ = nullptr;
};

}  // namespace medlab
