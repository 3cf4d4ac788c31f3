// The scheduler on the tiny test model: answers identical to a Session's alone, whatever shares the batch;
// cancellation, time limits, a full queue, bad requests and shutdown.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "runtime/scheduler.h"
#include "runtime/test_model.h"

namespace medlab {
namespace {

using namespace std::chrono_literals;

class TinyScheduler : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tiny_ = new testing::TinyTestModel("scheduler_tiny", 11);
    model_ = &tiny_->model();
  }
  static void TearDownTestSuite() { delete tiny_; }

  static std::vector<TokenId> prompt(const std::string& question, size_t images = 0) {
    std::string content = question;
    for (size_t i = 0; i < images; ++i) content += "<start_of_image>";
    size_t markers = 0;
    return model_->tokenizer.encode(
        expand_image_markers(render_chat({{"user", content}}), model_->vision->tokens_per_image(), markers), false);
  }

  static ModelInput picture(int seed) {
    Image image(40 + seed, 30);
    std::mt19937 rng{static_cast<uint32_t>(seed)};
    for (uint8_t& v : image.rgb) v = uint8_t(rng());
    return preprocess_image(image, preprocess_options_for(*model_->vision)).front();
  }

  // The answer a Session gives alone, on its own pool.
  static GenerationResult alone(const ServeRequest& r, Precision precision) {
    ThreadPool pool(2);
    Session session(*model_, 512, pool, best_kernels(), precision);
    ImageEmbeddingCache cache;
    std::vector<std::shared_ptr<const std::vector<float>>> embeddings;
    for (const ModelInput& input : r.images)
      embeddings.push_back(cache.encode(*model_->vision, input, pool, best_kernels(), precision).embeddings);
    const std::vector<ImageEmbeddings> placed =
        r.images.empty() ? std::vector<ImageEmbeddings>{}
                         : place_images(r.prompt, TokenId(model_->checkpoint.config().image_token_index),
                                        model_->vision->tokens_per_image(), embeddings);
    return session.generate(r.prompt, r.settings, {}, placed);
  }

  // Collects a request's updates until it finishes (after `streamed` and `tokens` already taken); the
  // streamed text and tokens must add up to the answer.
  static GenerationResult drain(PendingRequest& pending, std::string streamed = {}, size_t tokens = 0) {
    for (;;) {
      const PendingRequest::Update u = pending.wait(1000ms);
      streamed += u.text;
      tokens += u.tokens.size();
      if (u.finished) break;
    }
    EXPECT_EQ(streamed, pending.result().text);
    EXPECT_EQ(tokens, pending.result().tokens.size());
    return pending.result();
  }

  static ServeRequest request(const std::string& question, uint64_t seed, int64_t max_new_tokens, size_t images = 0) {
    ServeRequest r;
    r.prompt = prompt(question, images);
    for (size_t i = 0; i < images; ++i) r.images.push_back(picture(int(seed + i)));
    r.settings.max_new_tokens = max_new_tokens;
    r.settings.ignore_eos = true;
    r.settings.sampler.temperature = 0.9f;
    r.settings.sampler.top_p = 0.95f;
    r.settings.sampler.seed = seed;
    r.settings.logprobs = 2;
    return r;
  }

  static inline testing::TinyTestModel* tiny_ = nullptr;
  static inline const LoadedModel* model_ = nullptr;
};

TEST_F(TinyScheduler, BatchedAnswersEqualAnswersAlone) {
  for (const Precision precision : {Precision::Exact, Precision::Fast}) {
    std::vector<ServeRequest> requests{request("Is the cardiac silhouette enlarged?", 1, 20),
                                       request("Describe the findings.", 2, 7, 1),
                                       request("这张胸片有什么异常？", 3, 30),
                                       request("Compare these two images.", 4, 12, 2),
                                       request("Any pleural effusion?", 5, 16)};
    std::vector<GenerationResult> expected;
    for (const ServeRequest& r : requests) expected.push_back(alone(r, precision));

    ThreadPool pool(2);
    Scheduler scheduler(*model_, pool, best_kernels(), {.parallel = 3, .max_queue = 8, .n_ctx = 512, .precision = precision});
    std::vector<std::shared_ptr<PendingRequest>> pending;
    for (const ServeRequest& r : requests) pending.push_back(scheduler.submit(r));
    for (size_t i = 0; i < requests.size(); ++i) {
      ASSERT_TRUE(pending[i]);
      const GenerationResult got = drain(*pending[i]);
      EXPECT_EQ(got.stop_reason, "max_new_tokens");
      EXPECT_EQ(got.text, expected[i].text) << "request " << i;
      ASSERT_EQ(got.tokens.size(), expected[i].tokens.size()) << "request " << i;
      for (size_t t = 0; t < got.tokens.size(); ++t) {
        EXPECT_EQ(got.tokens[t].id, expected[i].tokens[t].id) << "request " << i << " token " << t;
        EXPECT_EQ(got.tokens[t].logprob, expected[i].tokens[t].logprob) << "request " << i << " token " << t;
      }
    }
    const Scheduler::Stats stats = scheduler.stats();
    EXPECT_EQ(stats.active, 0u);
    EXPECT_EQ(stats.generated_tokens, 20u + 7 + 30 + 12 + 16);
    EXPECT_LT(stats.decode_steps, 20u + 7 + 30 + 12 + 16 - 5);  // steps were shared
  }
}

TEST_F(TinyScheduler, CancelAndTimeLimitStopARequestAtItsNextStep) {
  ThreadPool pool(2);
  Scheduler scheduler(*model_, pool, best_kernels(), {.parallel = 2, .max_queue = 4, .n_ctx = 512});
  const auto cancelled = scheduler.submit(request("Describe the findings.", 1, 400));
  ServeRequest slow = request("Any pleural effusion?", 2, 400);
  slow.time_limit = 300ms;
  const auto timed = scheduler.submit(slow);
  const auto other = scheduler.submit(request("Is the heart enlarged?", 3, 10));
  std::string text;
  size_t tokens = 0;
  while (tokens == 0) {
    const PendingRequest::Update u = cancelled->wait(1000ms);
    text += u.text;
    tokens += u.tokens.size();
  }
  cancelled->cancel();
  EXPECT_EQ(drain(*cancelled, text, tokens).stop_reason, "cancelled");
  EXPECT_LT(cancelled->result().tokens.size(), 400u);
  EXPECT_EQ(drain(*timed).stop_reason, "time_limit");
  EXPECT_EQ(drain(*other).stop_reason, "max_new_tokens");  // a slot freed by the others serves it
  EXPECT_EQ(scheduler.stats().active, 0u);
}

TEST_F(TinyScheduler, AFullQueueRefusesAndBadRequestsAreErrors) {
  ThreadPool pool(1);
  Scheduler scheduler(*model_, pool, best_kernels(), {.parallel = 1, .max_queue = 1, .n_ctx = 128});
  const auto running = scheduler.submit(request("Describe the findings.", 1, 100));
  ASSERT_TRUE(running);
  while (scheduler.stats().queued > 0 || scheduler.stats().active == 0) std::this_thread::sleep_for(1ms);
  const auto waiting = scheduler.submit(request("Any effusion?", 2, 5));
  ASSERT_TRUE(waiting);
  EXPECT_FALSE(scheduler.submit(request("Any nodules?", 3, 5)));  // one running, one waiting: full

  ServeRequest too_long = request("Describe.", 4, 5);
  too_long.prompt.resize(200, too_long.prompt.back());
  EXPECT_THROW(scheduler.submit(too_long), Error);
  ServeRequest missing_image = request("Describe.", 5, 5, 1);
  missing_image.images.clear();
  EXPECT_THROW(scheduler.submit(missing_image), Error);
  ServeRequest no_tokens = request("Describe.", 6, 5);
  no_tokens.settings.max_new_tokens = 0;
  EXPECT_THROW(scheduler.submit(no_tokens), Error);

  running->cancel();
  EXPECT_EQ(drain(*running).stop_reason, "cancelled");
  EXPECT_EQ(drain(*waiting).stop_reason, "max_new_tokens");
}

TEST_F(TinyScheduler, ShutdownFinishesEveryRequest) {
  std::shared_ptr<PendingRequest> running, waiting;
  {
    ThreadPool pool(1);
    Scheduler scheduler(*model_, pool, best_kernels(), {.parallel = 1, .max_queue = 2, .n_ctx = 512});
    running = scheduler.submit(request("Describe the findings.", 1, 400));
    waiting = scheduler.submit(request("Any effusion?", 2, 5));
    while (scheduler.stats().generated_tokens == 0) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(drain(*running).stop_reason, "shutdown");
  EXPECT_EQ(drain(*waiting).stop_reason, "shutdown");
}

}  // namespace
}  // namespace medlab
