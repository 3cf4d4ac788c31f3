// bitsandbytes NF4 checkpoints: a test model written in transformers' load_in_4bit layout loads as NF4
// tensors whose values equal an independent decode of the parts in the files; broken parts are named.
#include "formats/bnb_nf4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/quant.h"
#include "formats/checkpoint.h"
#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TempDir;

// The weight `name` decoded straight from the shards, as bitsandbytes' dequantize_4bit computes it.
std::vector<float> decode_from_files(const fs::path& dir, const std::string& name) {
  std::map<std::string, ByteTensor> bytes;
  std::map<std::string, TensorView> floats;
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    files.push_back(std::make_unique<SafetensorsFile>(e.path().string()));
    for (const auto& [n, t] : files.back()->byte_tensors()) bytes.emplace(n, t);
    for (const auto& [n, t] : files.back()->tensors()) floats.emplace(n, t);
  }
  const ByteTensor& state_bytes = bytes.at(name + ".quant_state.bitsandbytes__nf4");
  const json state = json::parse(state_bytes.data, state_bytes.data + state_bytes.size);
  const float offset = state.at("nested_offset").get<float>();
  const int64_t blocksize = state.at("blocksize").get<int64_t>(), nested = state.at("nested_blocksize").get<int64_t>();
  const ByteTensor& codes = bytes.at(name);
  const ByteTensor& absmax = bytes.at(name + ".absmax");
  const auto f = [&](const std::string& part, int64_t i) { return element_f32(floats.at(name + "." + part), i); };
  std::vector<float> w(size_t(codes.size * 2));
  for (size_t i = 0; i < w.size(); ++i) {
    const int64_t block = int64_t(i) / blocksize;
    const float scale = f("nested_quant_map", absmax.data[block]) * f("nested_absmax", block / nested) + offset;
    const int code = i % 2 == 0 ? codes.data[i / 2] >> 4 : codes.data[i / 2] & 0x0F;
    w[i] = f("quant_map", code) * scale;
  }
  return w;
}

TEST(BnbNf4, TestModelLoadsAsNf4EqualToTheFilesParts) {
  TempDir dir("nf4"), plain("f32");
  write_test_checkpoint({"tiny", 5, DType::BF16, "", true}, dir.path().string());
  write_test_checkpoint({"tiny", 5, DType::F32, ""}, plain.path().string());
  const Checkpoint ck = Checkpoint::open(dir.path().string());
  const Checkpoint reference = Checkpoint::open(plain.path().string());
  EXPECT_EQ(ck.text("embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(ck.text("layers.0.input_layernorm.weight").dtype, DType::BF16);
  for (const char* name : {"layers.0.self_attn.q_proj.weight", "layers.2.self_attn.v_proj.weight",
                           "layers.7.mlp.down_proj.weight", "layers.5.mlp.gate_proj.weight"}) {
    const TensorView& t = ck.text(name);
    ASSERT_EQ(t.dtype, DType::NF4) << name;
    EXPECT_EQ(t.shape, reference.text(name).shape) << name;
    std::vector<float> loaded(static_cast<size_t>(t.numel()));
    dequantize_row(DType::NF4, t.data, loaded.data(), t.numel());
    EXPECT_EQ(loaded, decode_from_files(dir.path(), ck.layout().text + name)) << name;
    // And close to the weights before quantization (same seed, f32): NF4's usual error.
    double err2 = 0, sum2 = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double x = element_f32(reference.text(name), i);
      err2 += (loaded[size_t(i)] - x) * (loaded[size_t(i)] - x);
      sum2 += x * x;
    }
    EXPECT_LT(std::sqrt(err2 / sum2), 0.15) << name;
  }
}

// One small weight's parts, in memory, for the validation cases.
struct Parts {
  std::map<std::string, TensorView> tensors;
  std::map<std::string, ByteTensor> bytes;
  BnbNf4Parts p;
  std::string state;
  std::vector<float> x = std::vector<float>(4 * 64);

  explicit Parts(const std::string& state_json = "") {
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i)) * float(1 + i % 7);
    p = bnb_nf4_quantize(x.data(), int64_t(x.size()));
    state = state_json.empty() ? bnb_nf4_state_json({4, 64}, "bfloat16", p.nested_offset) : state_json;
    const std::string w = "w";
    bytes[w] = {{128, 1}, p.codes.data(), p.codes.size()};
    bytes[w + ".absmax"] = {{4}, p.absmax.data(), p.absmax.size()};
    bytes[w + ".quant_state.bitsandbytes__nf4"] = {{int64_t(state.size())}, reinterpret_cast<const uint8_t*>(state.data()), state.size()};
    tensors[w + ".quant_map"] = {DType::F32, {16}, p.quant_map.data()};
    tensors[w + ".nested_absmax"] = {DType::F32, {1}, p.nested_absmax.data()};
    tensors[w + ".nested_quant_map"] = {DType::F32, {256}, p.nested_quant_map.data()};
  }
};

class BnbNf4Join : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "config.json";
    testing::write_file(config_, json{{"quantization_config", {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true},
                                                               {"bnb_4bit_quant_type", "nf4"}}}}.dump());
  }
  TempDir dir_;
  fs::path config_;
};

TEST_F(BnbNf4Join, JoinsTheParts) {
  Parts parts;
  std::vector<JoinedTensor> joined = join_bnb_nf4(parts.tensors, parts.bytes, config_);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].name, "w");
  EXPECT_EQ(joined[0].view.shape, (std::vector<int64_t>{4, 64}));
  EXPECT_TRUE(parts.tensors.empty());
  EXPECT_TRUE(parts.bytes.empty());
  std::vector<float> y(256);
  dequantize_row(DType::NF4, joined[0].view.data, y.data(), 256);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], parts.x[i], 0.2f * 7) << i;
}

TEST_F(BnbNf4Join, NamesWhatIsWrong) {
  {
    Parts parts;
    parts.bytes.erase("w.absmax");
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "tensor w", "'w.absmax'", "missing");
  }
  {
    Parts parts;
    parts.bytes["w"].size = 100;
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "tensor w", "100 bytes", "128");
  }
  {
    Parts parts;
    parts.p.quant_map[3] = 0.5f;
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "w.quant_map", "value 3");
  }
  {
    Parts parts(R"({"quant_type": "fp4", "blocksize": 64, "shape": [4, 64]})");
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "w.quant_state", "fp4");
  }
  {
    Parts parts(R"({"quant_type": "nf4", "blocksize": 32, "shape": [4, 64], "nested_offset": 0.1, "nested_blocksize": 256})");
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "blocksize 32");
  }
  {
    Parts parts;
    const uint8_t stray[2] = {1, 2};
    parts.bytes["model.other"] = {{2}, stray, 2};
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "model.other", "U8");
  }
  {
    Parts parts;
    testing::write_file(config_, "{}");
    EXPECT_ERROR_MENTIONS(join_bnb_nf4(parts.tensors, parts.bytes, config_), "config.json", "quantization_config");
  }
}

}  // namespace
}  // namespace medlab
