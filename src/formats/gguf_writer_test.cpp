// Tests of the GGUF writer and the Gemma 3 -> GGUF export, read back with a small independent parser.
#include "formats/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/tensor.h"
#include "formats/checkpoint.h"
#include "formats/gguf_export.h"
#include "formats/mmproj_export.h"
#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

// A GGUF file parsed by the spec: metadata values as JSON, value types kept beside them.
struct ParsedGguf {
  struct Tensor {
    std::vector<int64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  uint32_t version = 0;
  std::map<std::string, json> kv;
  std::map<std::string, uint32_t> kv_type;  // of arrays: 100 + element type
  std::vector<std::string> order;           // tensor names in file order
  std::map<std::string, Tensor> tensors;
  std::string bytes;
  size_t data_start = 0;

  const char* data(const std::string& name) const { return bytes.data() + data_start + tensors.at(name).offset; }
};

class Cursor {
 public:
  explicit Cursor(const std::string& b) : b_(b) {}
  template <class T>
  T get() {
    if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("truncated GGUF");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string str() {
    const auto n = get<uint64_t>();
    if (pos_ + n > b_.size()) throw std::runtime_error("truncated GGUF string");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  json value(uint32_t type) {
    switch (type) {
      case 0: return get<uint8_t>();
      case 1: return get<int8_t>();
      case 2: return get<uint16_t>();
      case 3: return get<int16_t>();
      case 4: return get<uint32_t>();
      case 5: return get<int32_t>();
      case 6: return get<float>();
      case 7: return get<uint8_t>() != 0;
      case 8: return str();
      case 10: return get<uint64_t>();
      case 11: return get<int64_t>();
      case 12: return get<double>();
    }
    throw std::runtime_error("bad GGUF value type " + std::to_string(type));
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

ParsedGguf parse_gguf(const std::string& path) {
  ParsedGguf g;
  g.bytes = read_file(path);
  Cursor c(g.bytes);
  EXPECT_EQ(g.bytes.substr(0, 4), "GGUF");
  c.get<uint32_t>();
  g.version = c.get<uint32_t>();
  const auto n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str();
    const auto type = c.get<uint32_t>();
    if (type == 9) {
      const auto elem = c.get<uint32_t>();
      const auto n = c.get<uint64_t>();
      json arr = json::array();
      for (uint64_t j = 0; j < n; ++j) arr.push_back(c.value(elem));
      g.kv[key] = arr;
      g.kv_type[key] = 100 + elem;
    } else {
      g.kv[key] = c.value(type);
      g.kv_type[key] = type;
    }
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    ParsedGguf::Tensor t;
    const std::string name = c.str();
    const auto dims = c.get<uint32_t>();
    for (uint32_t d = 0; d < dims; ++d) t.ne.push_back(c.get<int64_t>());
    t.type = c.get<uint32_t>();
    t.offset = c.get<uint64_t>();
    g.order.push_back(name);
    g.tensors[name] = t;
  }
  const uint64_t align = g.kv.count("general.alignment") ? g.kv["general.alignment"].get<uint64_t>() : 32;
  g.data_start = (c.pos() + align - 1) / align * align;
  return g;
}

TEST(GgufWriter, WritesMetadataTensorsAndAlignedData) {
  TempDir dir;
  const std::string path = dir / "t.gguf";
  GgufWriter w(path);
  w.add_string("general.architecture", "test");
  w.add_u32("a.u32", 7);
  w.add_i32("a.i32", -3);
  w.add_u64("a.u64", uint64_t(1) << 40);
  w.add_f32("a.f32", 0.5f);
  w.add_bool("a.bool", true);
  w.add_strings("a.strings", {"x", "", "\xe2\x96\x81y"});
  w.add_f32s("a.f32s", {1.0f, -2.5f});
  w.add_i32s("a.i32s", {1, -1, 6});
  w.add_tensor("vec", GgufType::F32, {3});
  w.add_tensor("mat", GgufType::F16, {5, 2});
  const float vec[3] = {1, 2, 3};
  std::vector<uint16_t> mat(10);
  for (int i = 0; i < 10; ++i) mat[size_t(i)] = f32_to_f16(float(i));
  w.begin_tensor("vec");
  w.write(vec, 8);  // in two pieces
  w.write(vec + 2, 4);
  w.end_tensor();
  w.begin_tensor("mat");
  w.write(mat.data(), 20);
  w.end_tensor();
  EXPECT_FALSE(fs::exists(path));  // only the .partial file until finish()
  w.finish();

  const ParsedGguf g = parse_gguf(path);
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.kv.at("general.architecture"), "test");
  EXPECT_EQ(g.kv.at("general.alignment"), 32);
  EXPECT_EQ(g.kv_type.at("general.alignment"), 4u);
  EXPECT_EQ(g.kv.at("a.u32"), 7);
  EXPECT_EQ(g.kv.at("a.i32"), -3);
  EXPECT_EQ(g.kv_type.at("a.u64"), 10u);
  EXPECT_EQ(g.kv.at("a.u64"), uint64_t(1) << 40);
  EXPECT_EQ(g.kv.at("a.f32"), 0.5);
  EXPECT_EQ(g.kv.at("a.bool"), true);
  EXPECT_EQ(g.kv.at("a.strings"), json({"x", "", "\xe2\x96\x81y"}));
  EXPECT_EQ(g.kv_type.at("a.strings"), 108u);
  EXPECT_EQ(g.kv.at("a.f32s"), json({1.0, -2.5}));
  EXPECT_EQ(g.kv.at("a.i32s"), json({1, -1, 6}));
  EXPECT_EQ(g.kv_type.at("a.i32s"), 105u);
  EXPECT_EQ(g.order, (std::vector<std::string>{"vec", "mat"}));
  EXPECT_EQ(g.tensors.at("mat").ne, (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(g.tensors.at("mat").type, 1u);
  EXPECT_EQ(g.tensors.at("vec").offset, 0u);
  EXPECT_EQ(g.tensors.at("mat").offset, 32u);  // 12 bytes padded to the alignment
  EXPECT_EQ(g.data_start % 32, 0u);
  EXPECT_EQ(std::memcmp(g.data("vec"), vec, 12), 0);
  EXPECT_EQ(std::memcmp(g.data("mat"), mat.data(), 20), 0);
  EXPECT_EQ(g.bytes.size(), g.data_start + 64);
}

TEST(GgufWriter, RejectsMisuseNamingTheKeyOrTensor) {
  TempDir dir;
  const std::string path = dir / "bad.gguf";
  {
    GgufWriter w(path);
    w.add_u32("k", 1);
    EXPECT_ERROR_MENTIONS(w.add_u32("k", 2), "bad.gguf", "'k'", "twice");
    EXPECT_ERROR_MENTIONS(w.add_tensor("q", GgufType::Q8_0, {48, 2}), "'q'", "48", "q8_0");
    EXPECT_ERROR_MENTIONS(w.add_tensor(std::string(64, 'n'), GgufType::F32, {1}), "1 to 63 bytes");
    w.add_tensor("a", GgufType::F32, {2});
    w.add_tensor("b", GgufType::BF16, {4});
    EXPECT_ERROR_MENTIONS(w.begin_tensor("b"), "'b'", "out of order", "'a' is next");
    w.begin_tensor("a");
    const float x[3] = {};
    EXPECT_ERROR_MENTIONS(w.write(x, 12), "'a'", "more than its 8 bytes");
    w.write(x, 4);
    EXPECT_ERROR_MENTIONS(w.end_tensor(), "'a'", "4 bytes written, expected 8");
    EXPECT_ERROR_MENTIONS(w.add_u32("late", 1), "'late'", "after tensor data began");
    EXPECT_TRUE(fs::exists(path + ".partial"));
  }
  EXPECT_FALSE(fs::exists(path + ".partial"));  // abandoned: removed
  EXPECT_FALSE(fs::exists(path));
}

TEST(GgufWriter, QuantizesQ8_0AsGgml) {
  std::vector<float> x(64);
  for (int i = 0; i < 32; ++i) x[size_t(i)] = float(i - 16) / 4;  // block 0: max |x| = 4
  // block 1 stays zero: scale 0, all quants 0
  std::vector<uint8_t> out(2 * kQ8BlockBytes);
  gguf_encode_row(GgufType::Q8_0, x.data(), 64, out.data());
  uint16_t d16;
  std::memcpy(&d16, out.data(), 2);
  const float d = 4.0f / 127;
  EXPECT_EQ(d16, f32_to_f16(d));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(int8_t(out[size_t(2 + i)]), int(std::round(x[size_t(i)] / d))) << i;
  EXPECT_EQ(int8_t(out[2]), -127);
  for (size_t i = kQ8BlockBytes; i < out.size(); ++i) EXPECT_EQ(out[i], 0);
  EXPECT_EQ(gguf_tensor_bytes(GgufType::Q8_0, {64, 3}, "t"), 6 * kQ8BlockBytes);
}

// A miniature Gemma-style tokenizer.json: "▁" pieces, byte tokens, merges, added tokens of each kind.
json mini_tokenizer() {
  json vocab = {{"<pad>", 0}, {"<eos>", 1}, {"<bos>", 2}, {"<unk>", 3}, {"<mask>", 4}, {"<0x0A>", 5},
                {"\xe2\x96\x81", 6}, {"a", 7}, {"b", 8}, {"\xe2\x96\x81" "a", 9}, {"ab", 10},
                {"\xe2\x96\x81" "ab", 11}, {"\n", 12}, {"\xe2\x96\x81\xe2\x96\x81", 13}, {"<start_of_turn>", 14},
                {"<unused0>", 15}};
  const auto pair = [](const char* a, const char* b) { return json::array({a, b}); };  // {a, b} would be an object
  json merges = json::array({pair("\xe2\x96\x81", "a"), pair("a", "b"), pair("\xe2\x96\x81" "a", "b"),
                             pair("\xe2\x96\x81", "ab"), pair("\xe2\x96\x81", "\xe2\x96\x81")});
  const auto added = [](int id, const char* content, bool special) {
    return json{{"id", id}, {"content", content}, {"special", special}, {"normalized", false}};
  };
  return {{"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"vocab", vocab}, {"merges", merges}}},
          {"added_tokens", {added(0, "<pad>", true), added(1, "<eos>", true), added(2, "<bos>", true),
                            added(3, "<unk>", true), added(4, "<mask>", false), added(12, "\n", false),
                            added(13, "\xe2\x96\x81\xe2\x96\x81", false), added(14, "<start_of_turn>", true),
                            added(15, "<unused0>", false), added(17, "<image_soft_token>", true)}}};
}

TEST(GgufVocab, TypesScoresAndPaddingFollowLlamaCpp) {
  TempDir dir;
  write_file(dir / "tokenizer.json", mini_tokenizer().dump());
  write_file(dir / "tokenizer_config.json",
             json{{"bos_token", "<bos>"}, {"eos_token", {{"content", "<start_of_turn>"}}}, {"add_bos_token", true},
                  {"chat_template", "{{ bos_token }}"}}.dump());
  const GgufVocab v = gguf_vocab_from_tokenizer(dir.path(), 20);
  ASSERT_EQ(v.tokens.size(), 18u);  // up to the largest id; embedding rows past it are dropped
  const auto type = [&](int id) { return GgufTokenType(v.types[size_t(id)]); };
  EXPECT_EQ(type(0), GgufTokenType::Control);
  EXPECT_EQ(type(3), GgufTokenType::Unknown);
  EXPECT_EQ(type(4), GgufTokenType::Control);  // <mask>: not special in tokenizer.json, but looks it
  EXPECT_EQ(type(5), GgufTokenType::Byte);
  EXPECT_EQ(type(7), GgufTokenType::Normal);
  EXPECT_EQ(type(12), GgufTokenType::UserDefined);  // "\n" is split out of the text first
  EXPECT_EQ(type(13), GgufTokenType::Normal);       // "▁▁" is reached through merges
  EXPECT_EQ(type(15), GgufTokenType::Control);
  EXPECT_EQ(v.tokens[17], "<image_soft_token>");
  EXPECT_EQ(type(17), GgufTokenType::Control);
  EXPECT_EQ(v.tokens[16], "[PAD16]");  // an id the tokenizer leaves unused
  EXPECT_EQ(type(16), GgufTokenType::Unused);
  // Score = -(rank of the first merge producing the token); others below every merge.
  EXPECT_EQ(v.scores[9], 0.0f);
  EXPECT_EQ(v.scores[10], -1.0f);
  EXPECT_EQ(v.scores[11], -2.0f);  // made by merges 2 and 3: the first counts
  EXPECT_EQ(v.scores[13], -4.0f);
  EXPECT_LT(v.scores[7], -5.0f);
  EXPECT_EQ(v.bos, 2u);
  EXPECT_EQ(v.eos, 14u);  // tokenizer_config.json's eos_token, as llama.cpp's converter reads it
  EXPECT_EQ(v.unk, 3u);
  EXPECT_EQ(v.pad, 0u);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  EXPECT_EQ(v.chat_template, "{{ bos_token }}");
}

TEST(GgufVocab, RejectsTokenizersLlamaCppCannotHold) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(gguf_vocab_from_tokenizer(dir.path(), 20), "tokenizer.json", "missing");
  write_file(dir / "tokenizer.json", mini_tokenizer().dump());
  EXPECT_ERROR_MENTIONS(gguf_vocab_from_tokenizer(dir.path(), 17), "<image_soft_token>", "17", "17 rows");
  json t = mini_tokenizer();
  t["model"]["merges"].push_back(json::array({"b", "b"}));
  write_file(dir / "tokenizer.json", t.dump());
  EXPECT_ERROR_MENTIONS(gguf_vocab_from_tokenizer(dir.path(), 20), "merges[5]", "'bb'", "not in model.vocab");
  t = mini_tokenizer();
  t["added_tokens"].push_back({{"id", 18}, {"content", "a"}, {"special", false}});
  write_file(dir / "tokenizer.json", t.dump());
  EXPECT_ERROR_MENTIONS(gguf_vocab_from_tokenizer(dir.path(), 20), "ids 7 and 18", "'a'");
}

float as_f32(const ParsedGguf& g, const std::string& name, size_t i) {
  float f;
  std::memcpy(&f, g.data(name) + 4 * i, 4);
  return f;
}

class TinyExport : public ::testing::Test {
 protected:
  void SetUp() override {
    write_test_checkpoint({"tiny", 3, DType::BF16, ""}, dir_.path().string());
    write_file(dir_ / "tokenizer.json", mini_tokenizer().dump());
  }
  TempDir dir_;
};

TEST_F(TinyExport, WritesLlamaCppGemma3Layout) {
  const Checkpoint ck = Checkpoint::open(dir_.path().string());
  const std::string out = dir_ / "tiny.gguf";
  size_t calls = 0;
  const GgufExportSummary s =
      export_gguf(ck, out, {GgufType::F32, "tiny"}, [&](const std::string&, size_t, size_t) { ++calls; });
  const ParsedGguf g = parse_gguf(out);

  EXPECT_EQ(s.tensors, 2u + 8 * 13);  // embedding, output norm, 13 per layer; no vision tensors
  EXPECT_EQ(calls, s.tensors);
  EXPECT_EQ(g.tensors.size(), s.tensors);
  EXPECT_EQ(s.vocab, 18);  // the mini tokenizer's ids; the embedding's other rows are dropped
  EXPECT_EQ(g.kv.at("general.architecture"), "gemma3");
  EXPECT_EQ(g.kv.at("general.name"), "tiny");
  EXPECT_EQ(g.kv.at("general.file_type"), 0);
  EXPECT_EQ(g.kv.at("gemma3.embedding_length"), 64);
  EXPECT_EQ(g.kv.at("gemma3.block_count"), 8);
  EXPECT_EQ(g.kv.at("gemma3.feed_forward_length"), 256);
  EXPECT_EQ(g.kv.at("gemma3.attention.head_count"), 4);
  EXPECT_EQ(g.kv.at("gemma3.attention.head_count_kv"), 2);
  EXPECT_EQ(g.kv.at("gemma3.attention.key_length"), 16);
  EXPECT_EQ(g.kv.at("gemma3.attention.value_length"), 16);
  EXPECT_EQ(g.kv.at("gemma3.context_length"), 4096);
  EXPECT_EQ(g.kv.at("gemma3.attention.sliding_window"), 16);
  EXPECT_EQ(g.kv.at("gemma3.attention.sliding_window_pattern"), 6);
  EXPECT_EQ(g.kv.at("gemma3.rope.freq_base"), 1e6);
  EXPECT_EQ(g.kv.at("gemma3.rope.freq_base_swa"), 1e4);
  EXPECT_EQ(g.kv.at("gemma3.rope.scaling.type"), "linear");
  EXPECT_EQ(g.kv.at("gemma3.rope.scaling.factor"), 8.0);
  EXPECT_FLOAT_EQ(g.kv.at("gemma3.attention.layer_norm_rms_epsilon").get<float>(), 1e-6f);
  for (const char* key : {"gemma3.context_length", "gemma3.attention.sliding_window", "tokenizer.ggml.bos_token_id"})
    EXPECT_EQ(g.kv_type.at(key), 4u) << key;  // llama.cpp insists on uint32
  EXPECT_EQ(g.kv.at("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens").size(), 18u);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.add_space_prefix"), false);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.bos_token_id"), 2);

  // Shapes reversed, 1-D tensors f32, norms shifted by one, everything else bit-exact.
  EXPECT_EQ(g.tensors.at("token_embd.weight").ne, (std::vector<int64_t>{64, 18}));
  EXPECT_EQ(g.tensors.at("blk.0.attn_q.weight").ne, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(g.tensors.at("blk.0.attn_k.weight").ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(g.tensors.at("blk.7.ffn_down.weight").ne, (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(g.tensors.at("blk.3.attn_q_norm.weight").ne, (std::vector<int64_t>{16}));
  const std::pair<const char*, const char*> pairs[] = {
      {"blk.2.attn_norm.weight", "layers.2.input_layernorm.weight"},
      {"blk.2.post_attention_norm.weight", "layers.2.post_attention_layernorm.weight"},
      {"blk.2.ffn_norm.weight", "layers.2.pre_feedforward_layernorm.weight"},
      {"blk.2.post_ffw_norm.weight", "layers.2.post_feedforward_layernorm.weight"},
      {"blk.2.attn_k_norm.weight", "layers.2.self_attn.k_norm.weight"},
      {"output_norm.weight", "norm.weight"},
      {"blk.2.attn_output.weight", "layers.2.self_attn.o_proj.weight"},
      {"token_embd.weight", "embed_tokens.weight"},
  };
  for (const auto& [gguf, hf] : pairs) {
    const TensorView& src = ck.text(hf);
    const bool norm = std::string(hf).ends_with("norm.weight");
    EXPECT_EQ(g.tensors.at(gguf).type, 0u) << gguf;
    const int64_t n = gguf == std::string("token_embd.weight") ? 18 * 64 : src.numel();
    for (int64_t i = 0; i < n; i += 7)
      ASSERT_EQ(as_f32(g, gguf, size_t(i)), element_f32(src, i) + (norm ? 1.0f : 0.0f)) << gguf << " " << i;
  }
}

TEST_F(TinyExport, KeepsBf16AndQuantizesQ8_0) {
  const Checkpoint ck = Checkpoint::open(dir_.path().string());
  export_gguf(ck, dir_ / "bf16.gguf", {});
  const ParsedGguf b = parse_gguf(dir_ / "bf16.gguf");
  EXPECT_EQ(b.kv.at("general.file_type"), 32);
  EXPECT_EQ(b.tensors.at("blk.1.ffn_up.weight").type, 30u);
  EXPECT_EQ(b.tensors.at("blk.1.ffn_norm.weight").type, 0u);
  const TensorView& up = ck.text("layers.1.mlp.up_proj.weight");
  EXPECT_EQ(std::memcmp(b.data("blk.1.ffn_up.weight"), up.data, up.nbytes()), 0);

  export_gguf(ck, dir_ / "q8.gguf", {GgufType::Q8_0, ""});
  const ParsedGguf q = parse_gguf(dir_ / "q8.gguf");
  EXPECT_EQ(q.kv.at("general.file_type"), 7);
  EXPECT_EQ(q.tensors.at("token_embd.weight").type, 8u);
  EXPECT_EQ(q.tensors.at("output_norm.weight").type, 0u);
  std::vector<float> row(64);
  for (int i = 0; i < 64; ++i) row[size_t(i)] = element_f32(up, 5 * 64 + i);
  std::vector<uint8_t> expected(2 * kQ8BlockBytes);
  gguf_encode_row(GgufType::Q8_0, row.data(), 64, expected.data());
  EXPECT_EQ(std::memcmp(q.data("blk.1.ffn_up.weight") + 5 * expected.size(), expected.data(), expected.size()), 0);
}

TEST(GgufMatrixType, FollowsLlamaQuantizeForGemma3) {
  // MedGemma 4B: 34 layers, so more bits for layers 0-3, 29-33 and 6, 9, ..., 27.
  const auto mix = [](const std::string& name, int64_t row) { return gguf_matrix_type(name, row, 34, GgufType::Q4_K, true); };
  EXPECT_EQ(mix("token_embd.weight", 2560), GgufType::Q6_K);
  for (int layer : {0, 3, 6, 9, 27, 29, 33}) {
    EXPECT_EQ(mix("blk." + std::to_string(layer) + ".attn_v.weight", 2560), GgufType::Q6_K) << layer;
    EXPECT_EQ(mix("blk." + std::to_string(layer) + ".ffn_down.weight", 10240), GgufType::Q6_K) << layer;
  }
  for (int layer : {4, 5, 7, 8, 10, 26, 28}) {
    EXPECT_EQ(mix("blk." + std::to_string(layer) + ".attn_v.weight", 2560), GgufType::Q4_K) << layer;
    EXPECT_EQ(mix("blk." + std::to_string(layer) + ".ffn_down.weight", 10240), GgufType::Q4_K) << layer;
  }
  EXPECT_EQ(mix("blk.0.attn_q.weight", 2560), GgufType::Q4_K);
  EXPECT_EQ(mix("blk.0.ffn_gate.weight", 2560), GgufType::Q4_K);
  EXPECT_EQ(gguf_matrix_type("blk.0.attn_v.weight", 2560, 34, GgufType::Q5_K, true), GgufType::Q6_K);
  EXPECT_EQ(gguf_matrix_type("blk.4.attn_v.weight", 2560, 34, GgufType::Q5_K, true), GgufType::Q5_K);
  // Without the mix every matrix is the base type (llama-quantize --pure), the embedding included.
  EXPECT_EQ(gguf_matrix_type("token_embd.weight", 2560, 34, GgufType::Q4_K, false), GgufType::Q4_K);
  EXPECT_EQ(gguf_matrix_type("blk.0.attn_v.weight", 2560, 34, GgufType::Q4_0, false), GgufType::Q4_0);
  EXPECT_EQ(gguf_matrix_type("blk.0.attn_v.weight", 64, 34, GgufType::BF16, true), GgufType::BF16);
  // Rows that are not whole 256-value blocks fall back as llama-quantize does.
  EXPECT_EQ(mix("token_embd.weight", 64), GgufType::Q8_0);
  EXPECT_EQ(mix("blk.4.attn_q.weight", 64), GgufType::Q5_0);
  EXPECT_EQ(mix("blk.0.attn_v.weight", 64), GgufType::Q8_0);  // q6_k -> q8_0
  EXPECT_EQ(gguf_matrix_type("blk.4.attn_q.weight", 64, 34, GgufType::Q5_K, false), GgufType::Q5_1);
  EXPECT_EQ(mix("blk.4.attn_q.weight", 48), GgufType::F16);
  EXPECT_ERROR_MENTIONS(gguf_matrix_type("blk.4.attn_q.weight", 48, 34, GgufType::Q8_0, false), "blk.4.attn_q.weight",
                        "48", "q8_0");
}

TEST(GgufWriter, Q5FallbacksRoundTrip) {
  // Q5_0 is symmetric around code 16 with d = extreme / -16; Q5_1 spans [min, max] in 31 steps.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[size_t(i)] = float(i) - 16.0f;  // extreme -16: d = 1, codes i
  std::vector<uint8_t> q0(gguf_block_bytes(GgufType::Q5_0)), q1(gguf_block_bytes(GgufType::Q5_1));
  gguf_encode_row(GgufType::Q5_0, x.data(), 32, q0.data());
  gguf_encode_row(GgufType::Q5_1, x.data(), 32, q1.data());
  EXPECT_EQ(f16_to_f32(uint16_t(q0[0] | q0[1] << 8)), 1.0f);
  EXPECT_EQ(q0[6], uint8_t(0 | (0 << 4)));  // x[0] = -16 -> code 0, x[16] = 0 -> code 16 (fifth bit in qh)
  uint32_t qh;
  std::memcpy(&qh, &q0[2], 4);
  EXPECT_EQ(qh, 0xffff0000u);  // codes 16..31 for the second half
  EXPECT_EQ(f16_to_f32(uint16_t(q1[2] | q1[3] << 8)), -16.0f);  // the minimum
  EXPECT_EQ(gguf_tensor_bytes(GgufType::Q5_1, {64, 2}, "t"), 4 * 24u);
}

TEST_F(TinyExport, WritesQ4_K_MAsLlamaQuantizeWould) {
  const Checkpoint ck = Checkpoint::open(dir_.path().string());
  GgufExportOptions options{GgufType::Q4_K, ""};
  options.medium_mix = true;
  export_gguf(ck, dir_ / "q4km.gguf", options);
  const ParsedGguf g = parse_gguf(dir_ / "q4km.gguf");
  EXPECT_EQ(g.kv.at("general.file_type"), 15);
  // The tiny model's rows are 64 long except ffn_down's 256, so most matrices take the fallbacks.
  EXPECT_EQ(g.tensors.at("token_embd.weight").type, 8u);       // q8_0
  EXPECT_EQ(g.tensors.at("blk.1.attn_q.weight").type, 6u);     // q5_0
  EXPECT_EQ(g.tensors.at("blk.0.attn_v.weight").type, 8u);     // q6_k -> q8_0
  EXPECT_EQ(g.tensors.at("blk.0.ffn_down.weight").type, 14u);  // q6_k: layer 0 gets more bits
  EXPECT_EQ(g.tensors.at("blk.1.ffn_down.weight").type, 12u);  // q4_k
  EXPECT_EQ(g.tensors.at("blk.3.ffn_down.weight").type, 14u);
  EXPECT_EQ(g.tensors.at("blk.1.ffn_norm.weight").type, 0u);
  // The bytes are the llama.cpp reference quantization of the checkpoint's values.
  const TensorView& down = ck.text("layers.1.mlp.down_proj.weight");
  std::vector<float> row(256);
  for (int i = 0; i < 256; ++i) row[size_t(i)] = element_f32(down, 7 * 256 + i);
  std::vector<uint8_t> expected(gguf_block_bytes(GgufType::Q4_K));
  gguf_encode_row(GgufType::Q4_K, row.data(), 256, expected.data());
  EXPECT_EQ(std::memcmp(g.data("blk.1.ffn_down.weight") + 7 * expected.size(), expected.data(), expected.size()), 0);

  EXPECT_ERROR_MENTIONS(export_gguf(ck, dir_ / "x.gguf", {GgufType::Q6_K, "", true}), "_m", "q6_k");
}

TEST_F(TinyExport, RefusesAQueryScaleLlamaCppWouldNotApply) {
  json config = json::parse(read_file(dir_ / "config.json"));
  config["text_config"]["query_pre_attn_scalar"] = 20;
  write_file(dir_ / "config.json", config.dump());
  const Checkpoint ck = Checkpoint::open(dir_.path().string());
  EXPECT_ERROR_MENTIONS(export_gguf(ck, dir_ / "x.gguf", {}), "config.json", "query_pre_attn_scalar", "1/sqrt(16)");
  EXPECT_FALSE(fs::exists(dir_ / "x.gguf"));
}

// --- mmproj ----------------------------------------------------------------------------------------------

TEST_F(TinyExport, WritesLlamaCppMmprojLayout) {
  const Checkpoint ck = Checkpoint::open(dir_.path().string());
  const std::string out = dir_ / "mmproj.gguf";
  const MmprojExportSummary s = export_mmproj(ck, out, {GgufType::F32, "tiny"});
  const ParsedGguf g = parse_gguf(out);

  EXPECT_EQ(s.tensors, 3u + 2 * 16 + 2 + 2);  // embeddings, 16 per layer, post norm, projector
  EXPECT_EQ(g.tensors.size(), s.tensors);
  EXPECT_EQ(s.tokens_per_image, 16);
  EXPECT_EQ(g.kv.at("general.architecture"), "clip");
  EXPECT_EQ(g.kv.at("general.file_type"), 0);
  EXPECT_EQ(g.kv.at("clip.has_vision_encoder"), true);
  EXPECT_EQ(g.kv.at("clip.projector_type"), "gemma3");
  EXPECT_EQ(g.kv.at("clip.use_gelu"), true);
  EXPECT_EQ(g.kv.at("clip.vision.image_size"), 64);
  EXPECT_EQ(g.kv.at("clip.vision.patch_size"), 4);
  EXPECT_EQ(g.kv.at("clip.vision.embedding_length"), 32);
  EXPECT_EQ(g.kv.at("clip.vision.feed_forward_length"), 64);
  EXPECT_EQ(g.kv.at("clip.vision.block_count"), 2);
  EXPECT_EQ(g.kv.at("clip.vision.attention.head_count"), 2);
  EXPECT_EQ(g.kv.at("clip.vision.projection_dim"), 64);  // the text model's hidden size
  EXPECT_EQ(g.kv.at("clip.vision.projector.scale_factor"), 4);  // 16x16 patches pooled to 4x4 tokens
  for (const char* key : {"clip.vision.image_size", "clip.vision.projector.scale_factor", "clip.vision.block_count"})
    EXPECT_EQ(g.kv_type.at(key), 4u) << key;  // clip.cpp reads uint32
  EXPECT_FLOAT_EQ(g.kv.at("clip.vision.attention.layer_norm_epsilon").get<float>(), 1e-6f);
  EXPECT_EQ(g.kv.at("clip.vision.image_mean"), json::array({0.5, 0.5, 0.5}));
  EXPECT_EQ(g.kv.at("clip.vision.image_std"), json::array({0.5, 0.5, 0.5}));
  EXPECT_EQ(g.kv_type.at("clip.vision.image_mean"), 106u);  // an array of f32

  // Shapes reversed (the conv kernel as ggml_conv_2d takes it), everything f32 and bit-exact except the
  // soft-embedding norm, a Gemma RMSNorm shifted by one; the SigLIP LayerNorms are not.
  EXPECT_EQ(g.tensors.at("v.patch_embd.weight").ne, (std::vector<int64_t>{4, 4, 3, 32}));
  EXPECT_EQ(g.tensors.at("v.position_embd.weight").ne, (std::vector<int64_t>{32, 256}));
  EXPECT_EQ(g.tensors.at("v.blk.1.ffn_up.weight").ne, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(g.tensors.at("v.blk.1.ffn_down.weight").ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(g.tensors.at("mm.input_projection.weight").ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(g.tensors.at("mm.soft_emb_norm.weight").ne, (std::vector<int64_t>{32}));
  const std::pair<const char*, const char*> pairs[] = {
      {"v.patch_embd.weight", "embeddings.patch_embedding.weight"},
      {"v.position_embd.weight", "embeddings.position_embedding.weight"},
      {"v.blk.0.attn_out.bias", "encoder.layers.0.self_attn.out_proj.bias"},
      {"v.blk.1.ln1.weight", "encoder.layers.1.layer_norm1.weight"},
      {"v.blk.1.ln2.bias", "encoder.layers.1.layer_norm2.bias"},
      {"v.blk.1.ffn_up.weight", "encoder.layers.1.mlp.fc1.weight"},
      {"v.blk.0.ffn_down.weight", "encoder.layers.0.mlp.fc2.weight"},
      {"v.post_ln.weight", "post_layernorm.weight"},
  };
  for (const auto& [gguf, hf] : pairs) {
    const TensorView& src = ck.vision(hf);
    EXPECT_EQ(g.tensors.at(gguf).type, 0u) << gguf;
    for (int64_t i = 0; i < src.numel(); i += 5) ASSERT_EQ(as_f32(g, gguf, size_t(i)), element_f32(src, i)) << gguf;
  }
  const TensorView& proj = ck.projector("mm_input_projection_weight");
  const TensorView& norm = ck.projector("mm_soft_emb_norm.weight");
  for (int64_t i = 0; i < proj.numel(); i += 3)
    ASSERT_EQ(as_f32(g, "mm.input_projection.weight", size_t(i)), element_f32(proj, i)) << i;
  for (int64_t i = 0; i < norm.numel(); ++i)
    ASSERT_EQ(as_f32(g, "mm.soft_emb_norm.weight", size_t(i)), element_f32(norm, i) + 1.0f) << i;
}

TEST_F(TinyExport, MmprojTypesFollowLlamaCppsConverter) {
  json preprocessor = json::parse(read_file(dir_ / "preprocessor_config.json"));
  preprocessor["image_mean"] = {0.25, 0.5, 0.75};
  write_file(dir_ / "preprocessor_config.json", preprocessor.dump());
  const Checkpoint ck = Checkpoint::open(dir_.path().string());
  export_mmproj(ck, dir_ / "bf16.gguf", {});
  const ParsedGguf b = parse_gguf(dir_ / "bf16.gguf");
  EXPECT_EQ(b.kv.at("general.file_type"), 32);
  EXPECT_EQ(b.kv.at("clip.vision.image_mean"), json::array({0.25, 0.5, 0.75}));
  EXPECT_EQ(b.tensors.at("v.blk.0.attn_q.weight").type, 30u);  // bf16, as stored
  EXPECT_EQ(b.tensors.at("v.blk.0.attn_q.bias").type, 0u);
  EXPECT_EQ(b.tensors.at("v.patch_embd.weight").type, 0u);  // embeddings stay f32
  EXPECT_EQ(b.tensors.at("v.position_embd.weight").type, 0u);
  EXPECT_EQ(b.tensors.at("mm.input_projection.weight").type, 1u);  // f16: clip.cpp transposes it
  const TensorView& q = ck.vision("encoder.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(std::memcmp(b.data("v.blk.0.attn_q.weight"), q.data, q.nbytes()), 0);

  export_mmproj(ck, dir_ / "q8.gguf", {GgufType::Q8_0, ""});
  const ParsedGguf q8 = parse_gguf(dir_ / "q8.gguf");
  EXPECT_EQ(q8.tensors.at("v.blk.1.ffn_down.weight").type, 8u);
  EXPECT_EQ(q8.tensors.at("mm.input_projection.weight").type, 1u);
}

TEST_F(TinyExport, MmprojRefusesATextOnlyModel) {
  TempDir text("-text");
  write_test_checkpoint({"tiny-text", 3, DType::BF16, ""}, text.path().string());
  write_file(text / "tokenizer.json", mini_tokenizer().dump());
  const Checkpoint ck = Checkpoint::open(text.path().string());
  EXPECT_ERROR_MENTIONS(export_mmproj(ck, text / "x.gguf", {}), "Gemma3ForCausalLM", "no vision tower");
}

}  // namespace
}  // namespace medlab
