#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/quantize_weights.h"

namespace medlab {
namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::optional<std::string> read_test_model_note(const std::filesystem::path& dir) {
  const auto marker = dir / "medlab_test_model.json";
  if (!std::filesystem::exists(marker)) return std::nullopt;
  std::string note = "random-weight TEST model made by medlab make-test-model; its output is meaningless";
  std::ifstream in(marker);
  const auto json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_object() && json.contains("preset")) note += " (preset " + json["preset"].dump() + ")";
  return note;
}

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

LoadedModel::LoadedModel(Checkpoint checkpoint_, Tokenizer tokenizer_)
    : checkpoint(std::move(checkpoint_)),
      tokenizer(std::move(tokenizer_)),
      decoder(checkpoint, tokenizer.size(), checkpoint.config().mm_tokens_per_image),
      vision(checkpoint.config().multimodal() ? std::make_unique<SiglipVision>(checkpoint) : nullptr) {}

Tokenizer gguf_tokenizer(const GgufFile& file) {
  const std::string& model = file.string("tokenizer.ggml.model");
  if (model != "llama")
    fail(file.path(), ": tokenizer.ggml.model is '", model, "'; medlab reads Gemma's SentencePiece-style 'llama' vocabulary");
  if (file.boolean("tokenizer.ggml.add_space_prefix", false))
    fail(file.path(), ": tokenizer.ggml.add_space_prefix is true; Gemma 3's tokenizer adds no leading space");
  ScoredVocabulary v{file.path(), file.strings("tokenizer.ggml.tokens"), {}, {}};
  for (double s : file.numbers("tokenizer.ggml.scores")) v.scores.push_back(float(s));
  for (int64_t t : file.integers("tokenizer.ggml.token_type")) v.types.push_back(int32_t(t));
  return Tokenizer::from_scored_vocabulary(v);
}

std::unique_ptr<LoadedModel> load_model(const std::string& model, const LoadOptions& options) {
  Checkpoint checkpoint = Checkpoint::open(model, options.hf_hub_cache, options.mmproj);
  if (options.quantize)
    quantize_weights(checkpoint, *options.quantize, int(std::max(1u, std::thread::hardware_concurrency())));
  const auto tokenizer_path = checkpoint.dir() / "tokenizer.json";
  if (!checkpoint.gguf() && !std::filesystem::exists(tokenizer_path))
    fail(tokenizer_path.string(), ": missing (the model folder needs its tokenizer)");
  Tokenizer tokenizer = checkpoint.gguf() ? gguf_tokenizer(*checkpoint.gguf()) : Tokenizer::load(tokenizer_path.string());
  auto loaded = std::make_unique<LoadedModel>(std::move(checkpoint), std::move(tokenizer));
  const int64_t n_vocab = loaded->tokenizer.size();
  for (int64_t id : loaded->checkpoint.config().eos_token_ids)
    if (id >= 0 && id < n_vocab) loaded->stop_tokens.push_back(TokenId(id));
  loaded->stop_tokens.push_back(loaded->tokenizer.eos());
  if (auto end_of_turn = loaded->tokenizer.find("<end_of_turn>")) loaded->stop_tokens.push_back(*end_of_turn);
  std::sort(loaded->stop_tokens.begin(), loaded->stop_tokens.end());
  loaded->stop_tokens.erase(std::unique(loaded->stop_tokens.begin(), loaded->stop_tokens.end()), loaded->stop_tokens.end());
  loaded->test_model_note = read_test_model_note(loaded->checkpoint.dir());
  return loaded;
}

Session::Session(const LoadedModel& model, int64_t n_ctx, ThreadPool& pool, const KernelTable& kernels,
                 Precision precision)
    : model_(model), state_(model.decoder, n_ctx, pool, kernels, precision), logits_(size_t(model.decoder.n_vocab())) {}

GenerationResult Session::generate(const std::vector<TokenId>& prompt, const GenerationSettings& settings,
                                   const std::function<void(std::string_view)>& on_text,
                                   std::span<const ImageEmbeddings> images) {
  if (prompt.empty()) fail("prompt: empty");
  if (int64_t(prompt.size()) >= state_.n_ctx())
    fail("prompt: ", prompt.size(), " tokens do not fit the context of ", state_.n_ctx(),
         " tokens (leave room for at least one new token)");
  if (settings.max_new_tokens < 1) fail("max-new-tokens: must be at least 1");

  GenerationResult result;
  result.prompt_tokens = prompt;
  state_.reset();
  auto start = std::chrono::steady_clock::now();
  model_.decoder.forward(state_, prompt, logits_.data(), images);
  result.prefill_ms = ms_since(start);

  std::vector<TokenId> history = prompt;
  std::string text;
  size_t emitted = 0;
  start = std::chrono::steady_clock::now();
  for (;;) {
    const TokenId id = sample_token(logits_, settings.sampler, history, uint64_t(result.tokens.size()));
    GeneratedToken token{id, 0, {}};
    if (settings.logprobs > 0) {
      TokenLogprobs lp = token_logprobs(logits_, id, settings.logprobs);
      token.logprob = lp.chosen;
      token.top = std::move(lp.top);
    }
    const bool is_stop_token = std::binary_search(model_.stop_tokens.begin(), model_.stop_tokens.end(), id);
    if (is_stop_token && !settings.ignore_eos) {
      result.stop_reason = "stop_token";
      break;
    }
    result.tokens.push_back(std::move(token));
    history.push_back(id);
    if (!is_stop_token) text += model_.tokenizer.piece(id);

    size_t stop_at = std::string::npos;
    for (const std::string& stop : settings.stop_strings) stop_at = std::min(stop_at, text.find(stop, emitted > stop.size() ? emitted - stop.size() : 0));
    if (stop_at != std::string::npos) {
      text.resize(stop_at);
      result.stop_reason = "stop_string";
      break;
    }
    if (int64_t(result.tokens.size()) >= settings.max_new_tokens) {
      result.stop_reason = "max_new_tokens";
      break;
    }
    if (state_.n_past() >= state_.n_ctx()) {
      result.stop_reason = "context";
      break;
    }
    const size_t ready = text.size() - held_back(text, settings.stop_strings);
    if (on_text && ready > emitted) on_text(std::string_view(text).substr(emitted, ready - emitted));
    emitted = std::max(emitted, ready);

    model_.decoder.forward(state_, std::span<const int32_t>(&id, 1), logits_.data());
    ++result.decode_steps;
  }
  result.decode_ms = ms_since(start);
  if (on_text && text.size() > emitted) on_text(std::string_view(text).substr(emitted));
  result.text = std::move(text);
  return result;
}

}  // namespace medlab
