#include "formats/peft_adapter.h"

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/test_adapter.h"
#include "formats/test_checkpoint.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

class PeftAdapter : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(MEDLAB_BINARY_DIR) / "test-tmp" /
           ("peft_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(TestAdapterOptions options) {
    write_test_adapter(options, dir_.string());
    return dir_;
  }
  // Rewrites adapter_config.json through `edit`.
  void edit_config(const std::function<void(json&)>& edit) {
    json j;
    {
      std::ifstream in(dir_ / "adapter_config.json");
      j = json::parse(in);
    }
    edit(j);
    std::ofstream(dir_ / "adapter_config.json") << j.dump(2);
  }
  // The message of the Error opening the adapter for `preset` throws, or "" if it opens.
  std::string open_error(const std::string& preset = "tiny") {
    try {
      LoraAdapter::open(dir_, test_model_config(preset));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST_F(PeftAdapter, AllLinearCoversTextAndVisionWithAlphaOverRank) {
  write({});
  const ModelConfig config = test_model_config("tiny");
  const auto adapter = LoraAdapter::open(dir_, config);
  EXPECT_EQ(adapter->modules().size(), size_t(7 * config.text.num_hidden_layers + 6 * config.vision->num_hidden_layers));
  EXPECT_EQ(adapter->base_model(), "google/medgemma-4b-it");
  for (const LoraAdapter::Module& m : adapter->modules()) {
    EXPECT_EQ(m.rank, 8);
    EXPECT_FLOAT_EQ(m.scaling, 2.0f);
    EXPECT_TRUE(m.path.starts_with("language_model.model.layers.") || m.path.starts_with("vision_tower.vision_model.encoder."))
        << m.path;
  }
}

TEST_F(PeftAdapter, RsLoraScalesByTheSquareRootOfTheRank) {
  TestAdapterOptions o;
  o.use_rslora = true;
  write(o);
  EXPECT_FLOAT_EQ(LoraAdapter::open(dir_, test_model_config("tiny"))->modules().front().scaling, float(16 / std::sqrt(8.0)));
}

TEST_F(PeftAdapter, AlphaPatternMatchesWholeNamesAndDottedSuffixesInFileOrder) {
  write({});
  edit_config([](json& j) { j["alpha_pattern"] = {{"layers.0.mlp.down_proj", 4}, {"q_proj", 32}, {"down_proj", 1}}; });
  const auto adapter = LoraAdapter::open(dir_, test_model_config("tiny"));
  for (const LoraAdapter::Module& m : adapter->modules()) {
    float expected = 2;
    if (m.path.ends_with(".q_proj")) expected = 4;
    if (m.path.ends_with(".down_proj")) expected = 1.0f / 8;
    if (m.path == "language_model.model.layers.0.mlp.down_proj") expected = 0.5f;
    EXPECT_FLOAT_EQ(m.scaling, expected) << m.path;
  }
}

TEST_F(PeftAdapter, RankThatDisagreesWithTheConfigNamesTheModule) {
  write({});
  edit_config([](json& j) { j["rank_pattern"] = {{"layers.3.self_attn.k_proj", 4}}; });
  const std::string error = open_error();
  EXPECT_CONTAINS(error, "language_model.model.layers.3.self_attn.k_proj");
  EXPECT_CONTAINS(error, "r = 4");
}

TEST_F(PeftAdapter, NewTransformersLayoutLoads) {
  TestAdapterOptions o;
  o.new_layout = true;
  write(o);
  const auto adapter = LoraAdapter::open(dir_, test_model_config("tiny"));
  EXPECT_TRUE(adapter->modules().front().path.starts_with("model.")) << adapter->modules().front().path;
}

TEST_F(PeftAdapter, AdapterForAnotherModelNamesTheModule) {
  TestAdapterOptions o;
  o.preset = "tiny-text";
  write(o);
  const std::string error = open_error("tiny");
  EXPECT_CONTAINS(error, "model.layers.0.");
  EXPECT_CONTAINS(error, "do not fit its weight");
  EXPECT_CONTAINS(open_error("small-text"), "is not a module or tensor of this model");  // 6 layers, not 8
}

TEST_F(PeftAdapter, SelectedModuleWithoutWeightsIsNamed) {
  write({});
  edit_config([](json& j) { j["target_modules"].push_back("lm_head"); });
  const std::string error = open_error();
  EXPECT_CONTAINS(error, "selects 'language_model.lm_head'");
}

TEST_F(PeftAdapter, WeightsForAnUnselectedModuleAreNamed) {
  write({});
  edit_config([](json& j) { j["target_modules"] = json::array({"q_proj"}); });
  EXPECT_CONTAINS(open_error(), "which target_modules");
}

TEST_F(PeftAdapter, RegexTargetsAreMatchedWhole) {
  TestAdapterOptions o;
  o.target_modules = {"q_proj", "v_proj"};
  write(o);
  edit_config([](json& j) { j["target_modules"] = R"(.*\.(q_proj|v_proj))"; });
  EXPECT_EQ(open_error(), "");
  edit_config([](json& j) { j["target_modules"] = R"(language_model.*\.(q_proj|v_proj))"; });  // not the vision tower's
  EXPECT_CONTAINS(open_error(), "vision_tower.vision_model.encoder.layers.0.self_attn.");
}

TEST_F(PeftAdapter, LayersToTransformLimitsTheLayers) {
  write({});
  edit_config([](json& j) { j["layers_to_transform"] = json::array({0}); });
  EXPECT_CONTAINS(open_error(), "layers.1.");
}

TEST_F(PeftAdapter, ModulesToSaveReplaceTensorsAndAreNotAdapted) {
  TestAdapterOptions o;
  o.target_modules = {"o_proj"};
  o.modules_to_save = {"embed_tokens", "lm_head"};
  write(o);
  const auto adapter = LoraAdapter::open(dir_, test_model_config("tiny"));
  ASSERT_EQ(adapter->replacements().size(), 2u);
  EXPECT_EQ(adapter->replacements()[0].path, "language_model.lm_head.weight");
  EXPECT_EQ(adapter->replacements()[0].part, TensorSpec::Part::Head);
  EXPECT_EQ(adapter->replacements()[1].weight, "embed_tokens.weight");
}

TEST_F(PeftAdapter, UnsupportedVariantsAreRefusedByField) {
  write({});
  edit_config([](json& j) { j["use_dora"] = true; });
  EXPECT_CONTAINS(open_error(), "use_dora");
  edit_config([](json& j) {
    j["use_dora"] = false;
    j["peft_type"] = "IA3";
  });
  EXPECT_CONTAINS(open_error(), "peft_type");
  edit_config([](json& j) {
    j["peft_type"] = "LORA";
    j["target_modules"] = json::array({"embed_tokens"});
  });
  EXPECT_CONTAINS(open_error(), "an embedding");
  edit_config([](json& j) { j["target_modules"] = "(unclosed"; });
  EXPECT_CONTAINS(open_error(), "target_modules");
}

TEST_F(PeftAdapter, MissingFilesAreNamed) {
  EXPECT_CONTAINS(open_error(), "not a folder");
  write({});
  fs::rename(dir_ / "adapter_model.safetensors", dir_ / "adapter_model.bin");
  EXPECT_CONTAINS(open_error(), "safe_serialization");
  fs::remove(dir_ / "adapter_config.json");
  EXPECT_CONTAINS(open_error(), "adapter_config.json");
}

TEST(AdapterRequest, FolderWithOptionalScale) {
  EXPECT_EQ(parse_adapter_request("runs/lora").dir, fs::path("runs/lora"));
  EXPECT_EQ(parse_adapter_request("runs/lora").scale, 1.0f);
  const AdapterRequest half = parse_adapter_request("runs/lora:0.5");
  EXPECT_EQ(half.dir, fs::path("runs/lora"));
  EXPECT_EQ(half.scale, 0.5f);
  EXPECT_EQ(parse_adapter_request("runs/a:b").dir, fs::path("runs/a:b"));  // not a number: part of the name
  EXPECT_THROW(parse_adapter_request("runs/lora:inf"), Error);
  EXPECT_THROW(parse_adapter_request(":2"), Error);
}

}  // namespace
}  // namespace medlab
