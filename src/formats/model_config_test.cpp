#include "formats/model_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

using nlohmann::json;

// google/medgemma-4b-it's config.json (the fields medlab reads, and a few it ignores).
json medgemma_4b() {
  return json::parse(R"({
    "architectures": ["Gemma3ForConditionalGeneration"],
    "boi_token_index": 255999, "eoi_token_index": 256000, "eos_token_id": [1, 106],
    "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
    "model_type": "gemma3", "torch_dtype": "bfloat16", "transformers_version": "4.50.0",
    "text_config": {
      "attention_bias": false, "attention_dropout": 0.0, "attn_logit_softcapping": null,
      "final_logit_softcapping": null, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
      "hidden_size": 2560, "intermediate_size": 10240, "max_position_embeddings": 131072,
      "model_type": "gemma3_text", "num_attention_heads": 8, "num_hidden_layers": 34,
      "num_key_value_heads": 4, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
      "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
      "rope_theta": 1000000.0, "sliding_window": 1024, "sliding_window_pattern": 6,
      "use_cache": true, "vocab_size": 262208
    },
    "vision_config": {
      "hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "layer_norm_eps": 1e-06,
      "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_channels": 3,
      "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": false, "hidden_act": "gelu_pytorch_tanh"
    }
  })");
}

// google/medgemma-27b-text-it's: a flat Gemma3ForCausalLM config.
json medgemma_27b_text() {
  return json::parse(R"({
    "architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attn_logit_softcapping": null,
    "bos_token_id": 2, "eos_token_id": [1, 106], "final_logit_softcapping": null, "head_dim": 128,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 5376, "intermediate_size": 21504,
    "max_position_embeddings": 131072, "model_type": "gemma3_text", "num_attention_heads": 32,
    "num_hidden_layers": 62, "num_key_value_heads": 16, "pad_token_id": 0, "query_pre_attn_scalar": 168,
    "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
    "rope_theta": 1000000.0, "sliding_window": 1024, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
    "vocab_size": 262208
  })");
}

ModelConfig parse(const json& j) { return parse_model_config(j, "/m/config.json"); }

TEST(ModelConfig, ParsesMedGemma4b) {
  const ModelConfig c = parse(medgemma_4b());
  EXPECT_EQ(c.architecture, "Gemma3ForConditionalGeneration");
  EXPECT_TRUE(c.multimodal());
  EXPECT_EQ(c.text.hidden_size, 2560);
  EXPECT_EQ(c.text.num_hidden_layers, 34);
  EXPECT_EQ(c.text.head_dim, 256);
  EXPECT_EQ(c.text.query_pre_attn_scalar, 256);
  EXPECT_EQ(c.text.rope_linear_factor, 8.0);
  EXPECT_EQ(c.text.rope_local_base_freq, 10000.0);
  EXPECT_FALSE(c.text.attn_logit_softcapping.has_value());
  ASSERT_EQ(c.text.layer_is_sliding.size(), 34u);
  for (size_t i = 0; i < 34; ++i) EXPECT_EQ(c.text.layer_is_sliding[i], (i + 1) % 6 != 0) << "layer " << i;
  EXPECT_EQ(c.vision->image_size, 896);
  EXPECT_EQ(c.vision->patch_size, 14);
  EXPECT_EQ(c.mm_tokens_per_image, 256);
  EXPECT_EQ(c.image_token_index, 262144);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{1, 106}));
  EXPECT_EQ(expected_tensors(c).size(), 1u + 34 * 13 + 1 + 3 + 27 * 16 + 2 + 2);
}

TEST(ModelConfig, ParsesMedGemma27bText) {
  const ModelConfig c = parse(medgemma_27b_text());
  EXPECT_EQ(c.architecture, "Gemma3ForCausalLM");
  EXPECT_FALSE(c.multimodal());
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_EQ(c.text.num_attention_heads * c.text.head_dim, 4096);  // not hidden_size: q_proj is [4096, 5376]
  EXPECT_EQ(c.text.query_pre_attn_scalar, 168);
  EXPECT_EQ(c.text.layer_is_sliding.size(), 62u);
  EXPECT_EQ(expected_tensors(c).size(), 1u + 62 * 13 + 1);
}

TEST(ModelConfig, SparseConfigTakesTransformersDefaults) {
  // gemma-3-4b-it's config.json lists only what differs from Gemma3TextConfig's defaults.
  json j = medgemma_4b();
  j["text_config"] = {{"hidden_size", 2560},
                      {"intermediate_size", 10240},
                      {"model_type", "gemma3_text"},
                      {"num_hidden_layers", 34},
                      {"rope_scaling", {{"factor", 8.0}, {"rope_type", "linear"}}},
                      {"sliding_window", 1024}};
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.text.num_attention_heads, 8);
  EXPECT_EQ(c.text.num_key_value_heads, 4);
  EXPECT_EQ(c.text.head_dim, 256);
  EXPECT_EQ(c.text.vocab_size, 262208);
  EXPECT_EQ(c.text.query_pre_attn_scalar, 256);
  EXPECT_EQ(c.text.layer_is_sliding[5], false);
}

TEST(ModelConfig, LayerTypesOverrideThePattern) {
  json j = medgemma_27b_text();
  j["num_hidden_layers"] = 3;
  j.erase("sliding_window_pattern");
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention"};
  EXPECT_EQ(parse(j).text.layer_is_sliding, (std::vector<bool>{false, true, false}));
}

TEST(ModelConfig, ReadsTransformers5RopeParameters) {
  json j = medgemma_27b_text();
  for (const char* key : {"rope_theta", "rope_local_base_freq", "rope_scaling"}) j.erase(key);
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1000000.0}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.text.rope_linear_factor, 8.0);
  EXPECT_EQ(c.text.rope_theta, 1e6);
  EXPECT_EQ(c.text.rope_local_base_freq, 1e4);

  j["rope_parameters"]["full_attention"]["rope_type"] = "dynamic";
  EXPECT_ERROR_MENTIONS(parse(j), "/m/config.json", "rope_parameters.full_attention", "'dynamic'");
}

TEST(ModelConfig, WritesWhatItReads) {
  for (const std::string& preset : test_model_presets()) {
    const ModelConfig c = test_model_config(preset);
    const ModelConfig back = parse(model_config_to_json(c));
    EXPECT_EQ(back.architecture, c.architecture) << preset;
    EXPECT_EQ(back.text.head_dim, c.text.head_dim) << preset;
    EXPECT_EQ(back.text.layer_is_sliding, c.text.layer_is_sliding) << preset;
    EXPECT_EQ(back.text.rope_linear_factor, c.text.rope_linear_factor) << preset;
    EXPECT_EQ(back.eos_token_ids, c.eos_token_ids) << preset;
    EXPECT_EQ(back.multimodal(), c.multimodal()) << preset;
  }
  const json written = model_config_to_json(parse(medgemma_4b()));
  EXPECT_EQ(written["text_config"]["sliding_window_pattern"], 6);
  EXPECT_EQ(written["text_config"]["query_pre_attn_scalar"], 256);
  EXPECT_TRUE(written["text_config"]["query_pre_attn_scalar"].is_number_integer());
}

// Each broken config is reported with the file and the field at fault.
struct BadCase {
  const char* what;
  std::function<void(json&)> edit;
  std::vector<std::string> mentions;
};

TEST(ModelConfig, RejectsBrokenConfigs) {
  const std::vector<BadCase> cases = {
      {"unknown architecture",
       [](json& j) { j["architectures"] = {"LlamaForCausalLM"}; },
       {"architecture 'LlamaForCausalLM' is not supported", "Gemma3ForConditionalGeneration or Gemma3ForCausalLM"}},
      {"missing text_config", [](json& j) { j.erase("text_config"); }, {"text_config", "missing"}},
      {"missing model_type", [](json& j) { j.erase("model_type"); }, {"model_type", "missing"}},
      {"model_type mismatch", [](json& j) { j["model_type"] = "gemma3_text"; }, {"model_type 'gemma3_text'"}},
      {"hidden_size a string",
       [](json& j) { j["text_config"]["hidden_size"] = "2560"; },
       {"text_config.hidden_size", "must be an integer"}},
      {"zero heads",
       [](json& j) { j["text_config"]["num_attention_heads"] = 0; },
       {"text_config.num_attention_heads", "positive"}},
      {"heads not a multiple of kv heads",
       [](json& j) { j["text_config"]["num_key_value_heads"] = 3; },
       {"num_attention_heads", "multiple of num_key_value_heads"}},
      {"layer_types too short",
       [](json& j) { j["text_config"]["layer_types"] = {"full_attention"}; },
       {"text_config.layer_types", "1 entries", "34"}},
      {"layer_types against the pattern",
       [](json& j) {
         json types = json::array();
         for (int i = 0; i < 34; ++i) types.push_back(i % 2 ? "full_attention" : "sliding_attention");
         j["text_config"]["layer_types"] = types;
       },
       {"layer_types", "disagrees with sliding_window_pattern 6"}},
      {"unknown layer type",
       [](json& j) {
         j["text_config"]["layer_types"] = json::array();
         for (int i = 0; i < 34; ++i) j["text_config"]["layer_types"].push_back("chunked_attention");
       },
       {"layer_types", "chunked_attention"}},
      {"yarn rope",
       [](json& j) {
         j["text_config"]["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}};
       },
       {"rope_scaling", "'yarn' is not supported"}},
      {"other activation",
       [](json& j) { j["text_config"]["hidden_activation"] = "silu"; },
       {"hidden_activation", "'silu'"}},
      {"vision hidden not divisible",
       [](json& j) { j["vision_config"]["num_attention_heads"] = 7; },
       {"vision_config.hidden_size", "multiple of num_attention_heads"}},
      {"image not whole patches",
       [](json& j) { j["vision_config"]["patch_size"] = 15; },
       {"vision_config.image_size", "patch_size"}},
      {"tokens per image not square", [](json& j) { j["mm_tokens_per_image"] = 200; }, {"mm_tokens_per_image 200"}},
      {"vision head", [](json& j) { j["vision_config"]["vision_use_head"] = true; }, {"vision_use_head"}},
      {"eos not ints", [](json& j) { j["eos_token_id"] = {"<eos>"}; }, {"eos_token_id"}},
  };
  for (const BadCase& c : cases) {
    json j = medgemma_4b();
    c.edit(j);
    const std::string message = testing::error_of([&] { parse(j); });
    EXPECT_EQ(message.rfind("/m/config.json: ", 0), 0u) << c.what << ": " << message;
    for (const std::string& part : c.mentions)
      EXPECT_NE(message.find(part), std::string::npos) << c.what << ": " << message << "\nshould mention: " << part;
  }
}

TEST(ModelConfig, LoadReportsUnreadableFiles) {
  testing::TempDir dir;
  EXPECT_ERROR_MENTIONS(load_model_config(dir / "config.json"), dir / "config.json", "cannot open");
  testing::write_file(dir / "config.json", "{\"model_type\": ");
  EXPECT_ERROR_MENTIONS(load_model_config(dir / "config.json"), dir / "config.json", "not valid JSON");
  testing::write_file(dir / "config.json", medgemma_27b_text().dump());
  EXPECT_EQ(load_model_config(dir / "config.json").text.hidden_size, 5376);
}

}  // namespace
}  // namespace medlab
