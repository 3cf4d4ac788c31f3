#include "runtime/generation.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/session.h"

namespace medlab {
namespace {

// Bytes at the end of `text` that must wait: an incomplete UTF-8 character, or a tail that could
// still grow into a stop string.
size_t held_back(std::string_view text, const std::vector<std::string>& stop_strings) {
  size_t hold = 0;
  for (size_t back = 1; back <= std::min<size_t>(4, text.size()); ++back) {
    const unsigned char c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) != 0x80) {  // a lead byte: is its sequence complete?
      const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (need > back) hold = back;
      break;
    }
  }
  for (const std::string& stop : stop_strings)
    for (size_t len = std::min(stop.size() - 1, text.size()); len > hold; --len)
      if (text.substr(text.size() - len) == std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
  return hold;
}

}  // namespace

Generation::Generation(const LoadedModel& model, std::vector<TokenId> prompt, GenerationSettings settings)
    : model_(model), settings_(std::move(settings)), history_(prompt) {
  if (prompt.empty()) fail("prompt: empty");
  if (settings_.max_new_tokens < 1) fail("max-new-tokens: must be at least 1");
  for (const std::string& stop : settings_.stop_strings)
    if (stop.empty()) fail("stop: a stop string must not be empty");
  result_.prompt_tokens = std::move(prompt);
}

std::optional<TokenId> Generation::next(std::span<const float> logits, bool room) {
  if (done()) return std::nullopt;
  const TokenId id = sample_token(logits, settings_.sampler, history_, uint64_t(result_.tokens.size()));
  GeneratedToken token{id, 0, {}};
  if (settings_.logprobs > 0) {
    TokenLogprobs lp = token_logprobs(logits, id, settings_.logprobs);
    token.logprob = lp.chosen;
    token.top = std::move(lp.top);
  }
  const bool is_stop_token = std::binary_search(model_.stop_tokens.begin(), model_.stop_tokens.end(), id);
  if (is_stop_token && !settings_.ignore_eos) {
    result_.stop_reason = "stop_token";
    return std::nullopt;
  }
  result_.tokens.push_back(std::move(token));
  history_.push_back(id);
  std::string& text = result_.text;
  if (!is_stop_token) text += model_.tokenizer.piece(id);

  size_t stop_at = std::string::npos;
  for (const std::string& stop : settings_.stop_strings)
    stop_at = std::min(stop_at, text.find(stop, emitted_ > stop.size() ? emitted_ - stop.size() : 0));
  if (stop_at != std::string::npos) {
    text.resize(stop_at);
    result_.stop_reason = "stop_string";
  } else if (int64_t(result_.tokens.size()) >= settings_.max_new_tokens) {
    result_.stop_reason = "max_new_tokens";
  } else if (!room) {
    result_.stop_reason = "context";
  }
  if (done()) return std::nullopt;
  ++result_.decode_steps;
  return id;
}

void Generation::stop(const std::string& reason) {
  if (!done()) result_.stop_reason = reason;
}

std::string Generation::take_text() {
  const std::string& text = result_.text;
  const size_t ready = done() ? text.size() : text.size() - held_back(text, settings_.stop_strings);
  if (ready <= emitted_) return {};
  std::string piece = text.substr(emitted_, ready - emitted_);
  emitted_ = ready;
  return piece;
}

}  // namespace medlab
