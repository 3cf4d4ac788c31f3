// Serving many requests with one model: continuous batching on one scheduler thread.
//
// Each iteration the scheduler admits queued requests into free slots (up to `parallel`), runs one piece of
// prompt work for one admitted request (a layer of its image's vision tower, or a fixed-size prompt chunk,
// so that long prompts and images never stall the others for long), then
// one decode step for every slot that is generating, as a single batched pass through the decoder. A
// request's tokens are bit-identical whether it ran alone or beside others: rows of a batch never mix, and
// sampling draws from the request's own seed and step.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/images.h"
#include "runtime/session.h"

namespace medlab {

// What a client asks for: a tokenized prompt (image placeholders already expanded, see expand_image_markers)
// and its images as the vision tower takes them, in order. The scheduler encodes them (through its
// ImageEmbeddingCache) on its own thread, the one that owns the compute pool, before the prefill.
struct ServeRequest {
  std::vector<TokenId> prompt;
  std::vector<ModelInput> images;
  GenerationSettings settings;
  std::chrono::milliseconds time_limit{std::chrono::minutes(10)};  // from submission; then stop_reason "time_limit"
};

// The shared record of one request: the scheduler thread writes it, a client thread reads it.
class PendingRequest {
 public:
  struct Update {
    std::string text;                    // answer text that became final since the previous wait()
    std::vector<GeneratedToken> tokens;  // tokens generated since the previous wait()
    bool finished = false;               // result() is complete; no more updates
  };
  // Blocks until there is something new or the timeout passes (then an empty, unfinished update).
  Update wait(std::chrono::milliseconds timeout);
  // Asks the scheduler to stop this request at its next step (stop_reason "cancelled"); safe from any thread.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // Valid once an update said finished. stop_reason adds "cancelled", "time_limit", "shutdown" and "error"
  // (then error() says why) to the Session's reasons.
  const GenerationResult& result() const { return result_; }
  const std::string& error() const { return error_; }
  double queue_ms() const { return queue_ms_; }  // from submission to the start of its prefill
  double image_ms() const { return image_ms_; }  // encoding its images (0 for images already in the cache)

 private:
  friend class Scheduler;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;
  std::vector<GeneratedToken> tokens_;
  size_t tokens_taken_ = 0;
  bool finished_ = false;
  std::atomic<bool> cancelled_{false};
  GenerationResult result_;
  std::string error_;
  std::chrono::steady_clock::time_point submitted_;
  double queue_ms_ = 0, image_ms_ = 0;
};

class Scheduler {
 public:
  struct Options {
    int parallel = 4;         // requests generating at once (each holds a KV cache of n_ctx tokens)
    size_t max_queue = 32;    // requests waiting for a slot; submit() refuses beyond this
    int64_t n_ctx = 4096;     // context per slot: prompt + answer
    Precision precision = Precision::Fast;
  };
  Scheduler(const LoadedModel& model, ThreadPool& pool, const KernelTable& kernels, Options options);
  ~Scheduler();  // finishes what is in flight as "shutdown" and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Null when the queue is full (the caller answers 503); throws Error for a request that
  // can never run (prompt longer than the context, bad settings), before it is queued.
  std::shared_ptr<PendingRequest> submit(ServeRequest request);

  struct Stats {
    size_t queued = 0, active = 0;
    uint64_t prompt_tokens = 0, generated_tokens = 0;  // totals since start
    uint64_t decode_steps = 0;                         // batched passes
  };
  Stats stats() const;
  const Options& options() const { return options_; }

 private:
  struct Slot;
  void loop();
  void admit();
  void prefill_chunk();
  void prefill_chunk(Slot& slot);
  void encode_step(Slot& slot);
  void decode_step();
  void publish(Slot& slot);
  void finish(Slot& slot, const std::string& reason, const std::string& error = {});
  static void finish_waiting(PendingRequest& pending, const char* reason);

  const LoadedModel& model_;
  ThreadPool& pool_;
  const KernelTable& kernels_;
  Options options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Gemma3Workspace> workspace_;
  std::vector<float> logits_;  // [parallel][n_vocab]
  ImageEmbeddingCache image_cache_;

  mutable std::mutex mutex_;  // taken before a request's own mutex when both are held, never after
  std::condition_variable wake_;
  std::deque<std::pair<ServeRequest, std::shared_ptr<PendingRequest>>> queue_;
  Stats stats_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace medlab
