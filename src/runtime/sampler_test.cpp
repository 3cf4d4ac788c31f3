#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/sampler.h"

namespace medlab {
namespace {

TEST(Philox, KnownAnswerForZeroKeyAndCounter) {
  // Philox4x32-10 of counter 0, key 0 is {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8} (Random123's test vector).
  const uint64_t bits = 0x6627e8d5e169c58dull >> 11;
  EXPECT_EQ(philox_uniform(0, 0), double(bits) * 0x1.0p-53);
}

TEST(Philox, DependsOnSeedAndCounter) {
  EXPECT_NE(philox_uniform(1, 0), philox_uniform(2, 0));
  EXPECT_NE(philox_uniform(1, 0), philox_uniform(1, 1));
  EXPECT_EQ(philox_uniform(42, 7), philox_uniform(42, 7));
}

TEST(Sampler, GreedyPicksTheLargestAndTheLowestIdOnTies) {
  const std::vector<float> logits{0.5f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(sample_token(logits, {}, {}, 0), 1);
}

TEST(Sampler, TopKOfOneIsGreedy) {
  const std::vector<float> logits{0.5f, 3.0f, 2.9f, -1.0f};
  SamplerSettings s;
  s.temperature = 5.0f;
  s.top_k = 1;
  for (uint64_t step = 0; step < 50; ++step) EXPECT_EQ(sample_token(logits, s, {}, step), 1);
}

TEST(Sampler, FrequenciesFollowTheTemperedDistribution) {
  const std::vector<float> logits{1.0f, 2.0f, 0.0f};
  SamplerSettings s;
  s.temperature = 0.5f;
  s.seed = 9;
  std::vector<int> counts(3);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) counts[size_t(sample_token(logits, s, {}, uint64_t(i)))]++;
  const double z = std::exp(2.0) + std::exp(4.0) + 1.0;
  EXPECT_NEAR(counts[0] / double(draws), std::exp(2.0) / z, 0.01);
  EXPECT_NEAR(counts[1] / double(draws), std::exp(4.0) / z, 0.01);
  EXPECT_NEAR(counts[2] / double(draws), 1.0 / z, 0.01);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  // Probabilities at temperature 1: about 0.665, 0.245, 0.090.
  const std::vector<float> logits{2.0f, 1.0f, 0.0f};
  SamplerSettings s;
  s.temperature = 1.0f;
  s.top_p = 0.6f;
  for (uint64_t step = 0; step < 200; ++step) EXPECT_EQ(sample_token(logits, s, {}, step), 0);
  s.top_p = 0.8f;
  bool saw_second = false;
  for (uint64_t step = 0; step < 400; ++step) {
    const int32_t t = sample_token(logits, s, {}, step);
    EXPECT_NE(t, 2);
    saw_second |= t == 1;
  }
  EXPECT_TRUE(saw_second);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  const std::vector<float> logits{2.0f, 1.0f, 0.0f};  // ratios to the top: 1, 0.37, 0.14
  SamplerSettings s;
  s.temperature = 1.0f;
  s.min_p = 0.2f;
  for (uint64_t step = 0; step < 400; ++step) EXPECT_NE(sample_token(logits, s, {}, step), 2);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  const std::vector<float> logits{2.0f, 1.9f, -1.0f};
  SamplerSettings s;
  s.repetition_penalty = 1.5f;
  const std::vector<int32_t> history{0};
  EXPECT_EQ(sample_token(logits, s, history, 0), 1);  // 2.0 / 1.5 < 1.9
}

TEST(Logprobs, TopKSortedAndNormalised) {
  const std::vector<float> logits{0.0f, 2.0f, 1.0f, 2.0f};
  const TokenLogprobs lp = token_logprobs(logits, 2, 3);
  const double log_z = std::log(1 + 2 * std::exp(2.0) + std::exp(1.0));
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);
  EXPECT_EQ(lp.top[1].first, 3);
  EXPECT_EQ(lp.top[2].first, 2);
  EXPECT_NEAR(lp.top[0].second, 2.0 - log_z, 1e-6);
  EXPECT_NEAR(lp.chosen, 1.0 - log_z, 1e-6);
}

}  // namespace
}  // namespace medlab
