// Choosing the next token from logits: greedy, or sampling after repetition penalty, temperature,
// top-k, top-p and min-p, in that order (the order of transformers' generate()).
//
// Sampling draws from a counter-based generator (Philox 4x32-10) keyed by the seed and indexed by
// the step, so a seed gives the same tokens on any machine, any thread count, and after a restart.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace medlab {

struct SamplerSettings {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;  // 1: off; applied to tokens already in the prompt or output
  uint64_t seed = 0;
};

// A uniform double in [0, 1) from (seed, counter); the same on every machine.
double philox_uniform(uint64_t seed, uint64_t counter);

// The next token. `history` holds the prompt and the tokens generated so far; `step` indexes the draw.
int32_t sample_token(std::span<const float> logits, const SamplerSettings& settings, std::span<const int32_t> history,
                     uint64_t step);

// log-softmax of the raw logits: the chosen token's log-probability and the k most likely tokens
// (ties broken by the lower id).
struct TokenLogprobs {
  float chosen = 0;
  std::vector<std::pair<int32_t, float>> top;
};
TokenLogprobs token_logprobs(std::span<const float> logits, int32_t chosen, int32_t k);

}  // namespace medlab
