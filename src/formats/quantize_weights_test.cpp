// Quantizing a checkpoint's decoder at load: which tensors change, that their blocks are the
// quantizer's output for the original values, and what is refused.
#include "formats/quantize_weights.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/quant.h"
#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

using testing::TempDir;

// The row `row` of `t` (any dtype) quantized to `type` from scratch.
std::vector<uint8_t> expected_row(const TensorView& t, int64_t row, DType type) {
  const int64_t cols = t.shape[1];
  std::vector<float> x(static_cast<size_t>(cols));
  dequantize_row(t.dtype, static_cast<const uint8_t*>(t.data) + row_bytes(t.dtype, row * cols), x.data(), cols);
  std::vector<uint8_t> q(row_bytes(type, cols));
  quantize_row(type, x.data(), q.data(), cols);
  return q;
}

TEST(QuantizeWeights, QuantizesTheDecoderMatricesAndEmbedding) {
  TempDir dir;
  write_test_checkpoint({"tiny", 4, DType::BF16, ""}, dir.path().string());
  const Checkpoint original = Checkpoint::open(dir.path().string());
  Checkpoint ck = Checkpoint::open(dir.path().string());
  const QuantizeSummary s = quantize_weights(ck, DType::Q8_0, 2);
  EXPECT_EQ(s.tensors, 1 + 7 * ck.config().text.num_hidden_layers);
  EXPECT_EQ(s.kept, 0);
  EXPECT_LT(s.bytes_after, s.bytes_before);
  for (const char* name : {"embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.7.mlp.down_proj.weight"}) {
    const TensorView& q = ck.text(name);
    const TensorView& f = original.text(name);
    EXPECT_EQ(q.dtype, DType::Q8_0) << name;
    EXPECT_EQ(q.shape, f.shape) << name;
    for (int64_t row : {int64_t(0), f.shape[0] / 2, f.shape[0] - 1}) {
      const std::vector<uint8_t> want = expected_row(f, row, DType::Q8_0);
      EXPECT_EQ(std::memcmp(static_cast<const uint8_t*>(q.data) + want.size() * size_t(row), want.data(), want.size()), 0)
          << name << " row " << row;
    }
  }
  EXPECT_EQ(ck.text("layers.0.input_layernorm.weight").dtype, DType::BF16);  // norms stay
  EXPECT_EQ(ck.vision("encoder.layers.0.self_attn.q_proj.weight").dtype, DType::BF16);  // the vision tower too
}

TEST(QuantizeWeights, KeepsMatricesWhoseRowsAreNotWholeBlocks) {
  TempDir dir;
  write_test_checkpoint({"tiny", 4, DType::F16, ""}, dir.path().string());
  Checkpoint ck = Checkpoint::open(dir.path().string());
  // Rows of 64 (hidden) are not whole 256-value K-quant blocks; down_proj's rows of 256 are.
  const QuantizeSummary s = quantize_weights(ck, DType::Q4_K, 1);
  EXPECT_EQ(s.tensors, ck.config().text.num_hidden_layers);
  EXPECT_EQ(ck.text("layers.3.mlp.down_proj.weight").dtype, DType::Q4_K);
  EXPECT_EQ(ck.text("layers.3.mlp.up_proj.weight").dtype, DType::F16);
  EXPECT_EQ(ck.text("embed_tokens.weight").dtype, DType::F16);
}

TEST(QuantizeWeights, RefusesQuantizedInputAndUnknownTypes) {
  TempDir dir;
  write_test_checkpoint({"tiny-text", 4, DType::BF16, ""}, dir.path().string());
  Checkpoint ck = Checkpoint::open(dir.path().string());
  quantize_weights(ck, DType::NF4, 2);
  EXPECT_EQ(ck.text("layers.0.self_attn.o_proj.weight").dtype, DType::NF4);
  EXPECT_ERROR_MENTIONS(quantize_weights(ck, DType::Q8_0, 2), "embed_tokens.weight", "already nf4");
  EXPECT_ERROR_MENTIONS(quantize_weights(ck, DType::Q8_K, 2), "q8_k");
  EXPECT_EQ(parse_weight_quant("q4_k"), DType::Q4_K);
  EXPECT_ERROR_MENTIONS(parse_weight_quant("q3_k"), "'q3_k'", "q8_0, q4_0, q4_k, q5_k, q6_k, nf4");
}

}  // namespace
}  // namespace medlab
