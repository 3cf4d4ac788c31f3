// Generation on the tiny test model: streaming, stop strings, stop tokens, and seeded sampling that does
// not depend on the thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "runtime/session.h"
#include "runtime/test_model.h"

namespace medlab {
namespace {

class TinySession : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tiny_ = new testing::TinyTestModel("session_tiny", 7);
    model_ = &tiny_->model();
  }
  static void TearDownTestSuite() { delete tiny_; }

  GenerationResult generate(const GenerationSettings& settings, int threads, std::string* streamed = nullptr) {
    ThreadPool pool(threads);
    Session session(*model_, 256, pool, best_kernels());
    const auto prompt = model_->tokenizer.encode(render_chat({{"user", "Is the cardiac silhouette enlarged?"}}));
    return session.generate(prompt, settings, [&](std::string_view text) {
      if (streamed) *streamed += text;
    });
  }

  static inline testing::TinyTestModel* tiny_ = nullptr;
  static inline const LoadedModel* model_ = nullptr;
};

TEST_F(TinySession, StreamedTextIsTheAnswer) {
  GenerationSettings settings;
  settings.max_new_tokens = 24;
  settings.ignore_eos = true;
  std::string streamed;
  const GenerationResult r = generate(settings, 2, &streamed);
  EXPECT_EQ(r.tokens.size(), 24u);
  EXPECT_EQ(r.stop_reason, "max_new_tokens");
  EXPECT_EQ(streamed, r.text);
}

TEST_F(TinySession, StopStringEndsTheAnswerBeforeIt) {
  GenerationSettings settings;
  settings.max_new_tokens = 24;
  settings.ignore_eos = true;
  const std::string full = generate(settings, 2).text;
  ASSERT_GT(full.size(), 12u);
  settings.stop_strings = {full.substr(full.size() / 2, 5)};
  std::string streamed;
  const GenerationResult r = generate(settings, 2, &streamed);
  EXPECT_EQ(r.stop_reason, "stop_string");
  EXPECT_EQ(r.text, full.substr(0, full.find(settings.stop_strings[0])));
  EXPECT_EQ(streamed, r.text);
}

TEST_F(TinySession, SeededSamplingIsTheSameOnOneAndTwoThreads) {
  GenerationSettings settings;
  settings.max_new_tokens = 32;
  settings.ignore_eos = true;
  settings.sampler = {0.9f, 40, 0.95f, 0.0f, 1.1f, 1234};
  const GenerationResult one = generate(settings, 1), two = generate(settings, 2);
  ASSERT_EQ(one.tokens.size(), two.tokens.size());
  for (size_t i = 0; i < one.tokens.size(); ++i) EXPECT_EQ(one.tokens[i].id, two.tokens[i].id) << "step " << i;
  settings.sampler.seed = 1235;
  const GenerationResult other = generate(settings, 2);
  bool differs = false;
  for (size_t i = 0; i < other.tokens.size(); ++i) differs |= other.tokens[i].id != two.tokens[i].id;
  EXPECT_TRUE(differs) << "another seed should give another answer";
}

// The session's precision reaches the decoder's matmuls: on Q8_0 weights Fast and Exact give different
// log-probabilities, apart by no more than the activations' 8-bit rounding can move them.
TEST_F(TinySession, PrecisionReachesQuantizedDecoder) {
  const std::unique_ptr<LoadedModel> q8 = load_model(tiny_->dir().string(), {.quantize = DType::Q8_0});
  const auto prompt = q8->tokenizer.encode(render_chat({{"user", "Is the cardiac silhouette enlarged?"}}));
  GenerationSettings settings;
  settings.max_new_tokens = 1;
  settings.logprobs = 1;
  ThreadPool pool(2);
  float logprob[2];
  for (Precision precision : {Precision::Exact, Precision::Fast}) {
    Session session(*q8, 256, pool, best_kernels(), precision);
    const GenerationResult r = session.generate(prompt, settings);
    ASSERT_EQ(r.tokens.size(), 1u);
    logprob[int(precision)] = r.tokens[0].logprob;
  }
  EXPECT_NE(logprob[0], logprob[1]);
  EXPECT_NEAR(logprob[0], logprob[1], 0.05);
}

// The generation loop ends on any of these unless told to ignore them.
TEST_F(TinySession, StopTokensAreEosAndEndOfTurn) {
  const auto end_of_turn = model_->tokenizer.find("<end_of_turn>");
  ASSERT_TRUE(end_of_turn.has_value());
  EXPECT_TRUE(std::binary_search(model_->stop_tokens.begin(), model_->stop_tokens.end(), *end_of_turn));
  EXPECT_TRUE(std::binary_search(model_->stop_tokens.begin(), model_->stop_tokens.end(), model_->tokenizer.eos()));
}

}  // namespace
}  // namespace medlab
