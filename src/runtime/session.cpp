#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/quantize_weights.h"
#include "model/linear.h"

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

}  // namespace

LoadedModel::LoadedModel(Checkpoint checkpoint_, Tokenizer tokenizer_, int load_threads)
    : checkpoint(std::move(checkpoint_)),
      tokenizer(std::move(tokenizer_)),
      decoder(checkpoint, tokenizer.size(), checkpoint.config().mm_tokens_per_image, load_threads),
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
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  // Merged adapters change the weights before they are quantized; run-time ones sit beside the quantized base.
  const auto add_adapters = [&] {
    for (const AdapterRequest& request : options.adapters)
      checkpoint.add_adapter(LoraAdapter::open(request.dir, checkpoint.config()), request.scale, options.merge_adapters,
                             threads);
  };
  if (options.merge_adapters) add_adapters();
  if (options.quantize) quantize_weights(checkpoint, *options.quantize, threads);
  if (!options.merge_adapters) add_adapters();
  if (options.quantize) {
    ThreadPool pool(threads);
    pack_owned_matrices(checkpoint, pool);
  }
  const auto tokenizer_path = checkpoint.dir() / "tokenizer.json";
  if (!checkpoint.gguf() && !std::filesystem::exists(tokenizer_path))
    fail(tokenizer_path.string(), ": missing (the model folder needs its tokenizer)");
  Tokenizer tokenizer = checkpoint.gguf() ? gguf_tokenizer(*checkpoint.gguf()) : Tokenizer::load(tokenizer_path.string());
  auto loaded = std::make_unique<LoadedModel>(std::move(checkpoint), std::move(tokenizer), threads);
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
    : model_(model),
      state_(model.decoder, n_ctx),
      workspace_(model.decoder, pool, kernels, precision),
      logits_(size_t(model.decoder.n_vocab())) {}

GenerationResult Session::generate(const std::vector<TokenId>& prompt, const GenerationSettings& settings,
                                   const std::function<void(std::string_view)>& on_text,
                                   std::span<const ImageEmbeddings> images) {
  Generation generation(model_, prompt, settings);
  if (int64_t(prompt.size()) >= state_.n_ctx())
    fail("prompt: ", prompt.size(), " tokens do not fit the context of ", state_.n_ctx(),
         " tokens (leave room for at least one new token)");
  auto emit = [&] {
    const std::string text = generation.take_text();
    if (on_text && !text.empty()) on_text(text);
  };
  state_.reset();
  auto start = std::chrono::steady_clock::now();
  model_.decoder.forward(state_, workspace_, prompt, logits_.data(), images);
  const double prefill_ms = ms_since(start);

  start = std::chrono::steady_clock::now();
  while (const std::optional<TokenId> id = generation.next(logits_, state_.n_past() < state_.n_ctx())) {
    emit();
    model_.decoder.forward(state_, workspace_, std::span<const int32_t>(&*id, 1), logits_.data());
  }
  emit();
  GenerationResult result = std::move(generation.result());
  result.prefill_ms = prefill_ms;
  result.decode_ms = ms_since(start);
  return result;
}

}  // namespace medlab
