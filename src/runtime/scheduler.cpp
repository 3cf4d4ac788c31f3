#include "runtime/scheduler.h"

#include "core/error.h"

namespace medlab {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The number of separate runs of image tokens in a prompt: each must meet one image.
size_t image_runs(const std::vector<TokenId>& prompt, TokenId image_token) {
  size_t runs = 0;
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] == image_token && (i == 0 || prompt[i - 1] != image_token)) ++runs;
  return runs;
}

}  // namespace

PendingRequest::Update PendingRequest::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return finished_ || !text_.empty() || tokens_taken_ < tokens_.size(); });
  Update update;
  update.text = std::move(text_);
  text_.clear();
  update.tokens.assign(tokens_.begin() + std::ptrdiff_t(tokens_taken_), tokens_.end());
  tokens_taken_ = tokens_.size();
  update.finished = finished_;
  return update;
}

// A request in a slot: its sequence's cache, its answer so far, and where its prompt has got to.
struct Scheduler::Slot {
  Slot(const Gemma3& decoder, int64_t n_ctx) : state(decoder, n_ctx) {}

  Gemma3State state;
  std::shared_ptr<PendingRequest> pending;  // null when the slot is free
  ServeRequest request;
  std::optional<Generation> generation;
  std::vector<std::shared_ptr<const std::vector<float>>> embeddings;
  std::vector<ImageEmbeddings> images;
  bool images_encoded = false;
  std::unique_ptr<SiglipVision::Encoding> encoding;  // the image being encoded, a step per iteration
  std::shared_ptr<std::vector<float>> encoding_out;
  std::string encoding_key;
  double image_ms = 0;
  int64_t prefilled = 0;               // prompt tokens already run
  std::optional<TokenId> next_token;  // to run at the next decode step
  std::optional<Clock::time_point> decode_start;
  double prefill_ms = 0;
};

Scheduler::Scheduler(const LoadedModel& model, ThreadPool& pool, const KernelTable& kernels, Options options)
    : model_(model), pool_(pool), kernels_(kernels), options_(options) {
  if (options_.parallel < 1) fail("serve: --parallel must be at least 1");
  if (options_.parallel > model.decoder.max_chunk())
    fail("serve: --parallel ", options_.parallel, " exceeds the ", model.decoder.max_chunk(), " rows of one decode pass");
  for (int i = 0; i < options_.parallel; ++i) slots_.push_back(std::make_unique<Slot>(model.decoder, options_.n_ctx));
  workspace_ = std::make_unique<Gemma3Workspace>(model.decoder, pool, kernels, options_.precision);
  logits_.resize(size_t(options_.parallel) * size_t(model.decoder.n_vocab()));
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::shared_ptr<PendingRequest> Scheduler::submit(ServeRequest request) {
  Generation check(model_, request.prompt, request.settings);  // throws on bad settings
  if (int64_t(request.prompt.size()) >= options_.n_ctx)
    fail("prompt: ", request.prompt.size(), " tokens do not fit the context of ", options_.n_ctx,
         " tokens (leave room for at least one new token)");
  if (!request.images.empty() && !model_.vision) fail("image: this model has no vision tower");
  if (model_.vision) {
    const size_t runs = image_runs(request.prompt, TokenId(model_.checkpoint.config().image_token_index));
    if (runs != request.images.size()) fail("prompt: ", runs, " image placeholders for ", request.images.size(), " images");
  }
  auto pending = std::make_shared<PendingRequest>();
  pending->submitted_ = Clock::now();
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= options_.max_queue) return nullptr;
    queue_.emplace_back(std::move(request), pending);
    stats_.queued = queue_.size();
  }
  wake_.notify_all();
  return pending;
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Scheduler::loop() {
  const auto busy = [&] {
    for (const auto& slot : slots_)
      if (slot->pending) return true;
    return false;
  };
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || busy() || !queue_.empty(); });
      if (stopping_) {
        std::vector<std::shared_ptr<PendingRequest>> waiting;
        for (auto& entry : queue_) waiting.push_back(entry.second);
        queue_.clear();
        stats_.queued = 0;
        lock.unlock();
        for (auto& pending : waiting) finish_waiting(*pending, "shutdown");
        for (auto& slot : slots_)
          if (slot->pending) finish(*slot, "shutdown");
        return;
      }
    }
    admit();
    const Clock::time_point now = Clock::now();
    for (auto& slot : slots_) {
      if (!slot->pending) continue;
      if (slot->pending->cancelled()) finish(*slot, "cancelled");
      else if (now > slot->pending->submitted_ + slot->request.time_limit) finish(*slot, "time_limit");
    }
    prefill_chunk();
    decode_step();
  }
}

// Moves queued requests into free slots, in order. Requests cancelled or out of time while they waited
// are answered at once and never take a slot.
void Scheduler::admit() {
  std::vector<std::pair<std::shared_ptr<PendingRequest>, const char*>> dropped;
  {
    std::lock_guard lock(mutex_);
    const Clock::time_point now = Clock::now();
    for (auto it = queue_.begin(); it != queue_.end();) {
      const char* reason = it->second->cancelled()                                ? "cancelled"
                           : now > it->second->submitted_ + it->first.time_limit ? "time_limit"
                                                                                  : nullptr;
      if (reason) {
        dropped.emplace_back(it->second, reason);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& slot : slots_) {
      if (slot->pending || queue_.empty()) continue;
      auto [request, pending] = std::move(queue_.front());
      queue_.pop_front();
      slot->request = std::move(request);
      slot->generation.emplace(model_, slot->request.prompt, slot->request.settings);  // checked by submit()
      slot->pending = std::move(pending);
      slot->embeddings.clear();
      slot->images.clear();
      slot->images_encoded = slot->request.images.empty();
      slot->encoding.reset();
      slot->image_ms = 0;
      slot->prefilled = 0;
      slot->next_token.reset();
      slot->decode_start.reset();
      slot->prefill_ms = 0;
      slot->state.reset();
      slot->pending->queue_ms_ = ms_between(slot->pending->submitted_, now);  // read only once finished
      ++stats_.active;
    }
    stats_.queued = queue_.size();
  }
  for (auto& [pending, reason] : dropped) finish_waiting(*pending, reason);
}

// Answers a request that never reached a slot.
void Scheduler::finish_waiting(PendingRequest& pending, const char* reason) {
  std::lock_guard lock(pending.mutex_);
  pending.result_.stop_reason = reason;
  pending.finished_ = true;
  pending.changed_.notify_all();
}

// One piece of prompt work for the first slot still in its prompt: encoding its images, or one chunk.
void Scheduler::prefill_chunk() {
  for (auto& slot : slots_) {
    if (!slot->pending || slot->next_token) continue;
    try {
      prefill_chunk(*slot);
    } catch (const std::exception& e) {  // a bad request must not take the others down
      finish(*slot, "error", e.what());
    }
    return;
  }
}

void Scheduler::prefill_chunk(Slot& slot) {
  const Clock::time_point start = Clock::now();
  if (!slot.images_encoded) return encode_step(slot);
  const std::vector<TokenId>& prompt = slot.request.prompt;
  const int64_t n = int64_t(prompt.size()), begin = slot.prefilled;
  const int64_t end = model_.decoder.chunk_end(begin, n, slot.images);
  std::vector<ImageEmbeddings> local;
  for (ImageEmbeddings image : slot.images)
    if (image.begin >= begin && image.begin < end) {
      image.begin -= begin;
      local.push_back(image);
    }
  model_.decoder.forward(slot.state, *workspace_,
                         std::span<const int32_t>(prompt).subspan(size_t(begin), size_t(end - begin)),
                         end == n ? logits_.data() : nullptr, local);
  slot.prefilled = end;
  slot.prefill_ms += ms_between(start, Clock::now());
  {
    std::lock_guard lock(mutex_);
    stats_.prompt_tokens += uint64_t(end - begin);
  }
  if (end < n) return;
  slot.decode_start = Clock::now();
  slot.next_token = slot.generation->next({logits_.data(), size_t(model_.decoder.n_vocab())},
                                          slot.state.n_past() < slot.state.n_ctx());
  publish(slot);
}

// One step of the slot's image encoding (a tower layer), so that a long encode does not stall the
// decoding of other requests; images already in the cache cost nothing.
void Scheduler::encode_step(Slot& slot) {
  const SiglipVision& vision = *model_.vision;
  const Clock::time_point start = Clock::now();
  if (slot.encoding) {
    slot.encoding->step(pool_, kernels_);
    if (slot.encoding->done()) {
      image_cache_.insert(slot.encoding_key, slot.encoding_out);
      slot.embeddings.push_back(std::move(slot.encoding_out));
      slot.encoding.reset();
    }
  }
  // The next image: from the cache at once, or its encoding, stepped from the next iteration on.
  while (!slot.encoding && slot.embeddings.size() < slot.request.images.size()) {
    const ModelInput& input = slot.request.images[slot.embeddings.size()];
    slot.encoding_key = ImageEmbeddingCache::key(vision, input, options_.precision);
    if (auto cached = image_cache_.find(slot.encoding_key)) {
      slot.embeddings.push_back(std::move(cached));
      continue;
    }
    slot.encoding_out = std::make_shared<std::vector<float>>(size_t(vision.tokens_per_image() * vision.output_dim()));
    slot.encoding = std::make_unique<SiglipVision::Encoding>(vision, input.pixels.data(), slot.encoding_out->data(),
                                                             options_.precision);
  }
  slot.image_ms += ms_between(start, Clock::now());
  if (slot.embeddings.size() < slot.request.images.size()) return;
  slot.images = place_images(slot.request.prompt, TokenId(model_.checkpoint.config().image_token_index),
                             vision.tokens_per_image(), slot.embeddings);
  slot.images_encoded = true;
  std::lock_guard lock(slot.pending->mutex_);
  slot.pending->image_ms_ = slot.image_ms;
}

// One batched decode pass over every slot that has a token to run.
void Scheduler::decode_step() {
  std::vector<Gemma3State*> states;
  std::vector<int32_t> tokens;
  std::vector<Slot*> batch;
  for (auto& slot : slots_)
    if (slot->pending && slot->next_token) {
      states.push_back(&slot->state);
      tokens.push_back(*slot->next_token);
      batch.push_back(slot.get());
    }
  if (batch.empty()) return;
  try {
    model_.decoder.decode(states, *workspace_, tokens, logits_.data());
  } catch (const std::exception& e) {
    for (Slot* slot : batch) finish(*slot, "error", e.what());
    return;
  }
  {
    std::lock_guard lock(mutex_);
    ++stats_.decode_steps;
  }
  const size_t n_vocab = size_t(model_.decoder.n_vocab());
  for (size_t i = 0; i < batch.size(); ++i) {
    Slot& slot = *batch[i];
    slot.next_token = slot.generation->next({logits_.data() + i * n_vocab, n_vocab}, slot.state.n_past() < slot.state.n_ctx());
    publish(slot);
  }
}

// Hands the slot's new text and tokens to its client; finishes the request when its answer is complete.
void Scheduler::publish(Slot& slot) {
  if (slot.generation->done()) return finish(slot, slot.generation->result().stop_reason);
  const std::vector<GeneratedToken>& tokens = slot.generation->result().tokens;
  {
    std::lock_guard lock(mutex_);
    std::lock_guard request_lock(slot.pending->mutex_);
    PendingRequest& p = *slot.pending;
    const size_t added = tokens.size() - p.tokens_.size();
    stats_.generated_tokens += added;
    p.text_ += slot.generation->take_text();
    p.tokens_.insert(p.tokens_.end(), tokens.end() - std::ptrdiff_t(added), tokens.end());
  }
  slot.pending->changed_.notify_all();
}

void Scheduler::finish(Slot& slot, const std::string& reason, const std::string& error) {
  Generation& generation = *slot.generation;
  generation.stop(reason);
  GenerationResult& result = generation.result();
  result.prefill_ms = slot.prefill_ms;
  result.decode_ms = slot.decode_start ? ms_between(*slot.decode_start, Clock::now()) : 0;
  {
    // Statistics first, so that a client woken by the end already sees them.
    std::lock_guard lock(mutex_);
    std::lock_guard request_lock(slot.pending->mutex_);
    PendingRequest& p = *slot.pending;
    const size_t added = result.tokens.size() - p.tokens_.size();
    stats_.generated_tokens += added;
    --stats_.active;
    p.text_ += generation.take_text();
    p.tokens_.insert(p.tokens_.end(), result.tokens.end() - std::ptrdiff_t(added), result.tokens.end());
    p.result_ = std::move(result);
    p.error_ = error;
    p.finished_ = true;
  }
  slot.pending->changed_.notify_all();
  slot.pending.reset();
  slot.generation.reset();
  slot.next_token.reset();
}

}  // namespace medlab
