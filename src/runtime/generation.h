// One answer being generated, a step at a time: sampling, log-probabilities, stop tokens and strings, and
// the text released as it becomes final. Session::generate and the server's Scheduler both drive it, so a
// request gives the same tokens and text through either.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace medlab {

struct LoadedModel;

struct GenerationSettings {
  int64_t max_new_tokens = 256;
  SamplerSettings sampler;
  std::vector<std::string> stop_strings;  // generation ends before the first occurrence; it is not returned
  bool ignore_eos = false;                // keep generating past stop tokens (for parity tests)
  int32_t logprobs = 0;                   // top-k log-probabilities to record per generated token
};

struct GeneratedToken {
  TokenId id = 0;
  float logprob = 0;
  std::vector<std::pair<TokenId, float>> top;  // when logprobs > 0
};

struct GenerationResult {
  std::vector<TokenId> prompt_tokens;
  std::vector<GeneratedToken> tokens;
  std::string text;
  std::string stop_reason;  // "stop_token", "stop_string", "max_new_tokens", "context"
  double prefill_ms = 0, decode_ms = 0;
  int64_t decode_steps = 0;  // forward passes after the prompt
};

class Generation {
 public:
  // Checks the settings (Error on a bad one) and starts an answer to `prompt`.
  Generation(const LoadedModel& model, std::vector<TokenId> prompt, GenerationSettings settings);

  // From the logits after the prompt or after the last token fed, picks the next token. Returns it when the
  // model must now be run on it, or nothing once the answer is complete (result().stop_reason says why).
  // `room`: whether the context can take one more token.
  std::optional<TokenId> next(std::span<const float> logits, bool room);
  // Ends the answer early with this stop reason.
  void stop(const std::string& reason);

  // Text that became final since the previous call: never bytes a stop string may still claim, nor half a
  // UTF-8 character, until the answer is complete.
  std::string take_text();

  bool done() const { return !result_.stop_reason.empty(); }
  GenerationResult& result() { return result_; }

 private:
  const LoadedModel& model_;
  GenerationSettings settings_;
  std::vector<TokenId> history_;  // prompt and answer, for the repetition penalty
  GenerationResult result_;
  size_t emitted_ = 0;
};

}  // namespace medlab
