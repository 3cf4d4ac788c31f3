// The fields of a Hugging Face Gemma 3 config.json that medlab uses, checked when parsed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace medlab {

struct TextConfig {
  int64_t vocab_size = 0;         // rows of embed_tokens (262208 for MedGemma; the tokenizer has fewer)
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  int64_t sliding_window = 0;
  double query_pre_attn_scalar = 0;  // attention scores are scaled by query_pre_attn_scalar^-0.5
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;            // global (full-attention) layers
  double rope_local_base_freq = 1e4;  // sliding-window layers
  double rope_linear_factor = 1.0;    // rope_scaling {"rope_type": "linear", "factor": F}; global layers only
  std::optional<double> attn_logit_softcapping;
  std::optional<double> final_logit_softcapping;
  std::vector<bool> layer_is_sliding;  // per layer: from layer_types, else sliding_window_pattern
  bool tie_word_embeddings = true;     // false: the output head is its own lm_head (a LoRA's modules_to_save)
};

struct VisionConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_channels = 3;
  int64_t image_size = 0;
  int64_t patch_size = 0;
  double layer_norm_eps = 1e-6;
};

struct ModelConfig {
  std::string architecture;  // "Gemma3ForConditionalGeneration" or "Gemma3ForCausalLM"
  std::string model_type;    // "gemma3" or "gemma3_text"
  std::string torch_dtype;   // as declared; the tensors' own dtypes are what count
  TextConfig text;
  std::optional<VisionConfig> vision;  // present for Gemma3ForConditionalGeneration
  int64_t mm_tokens_per_image = 0;
  int64_t boi_token_index = -1;
  int64_t eoi_token_index = -1;
  int64_t image_token_index = -1;
  std::vector<int64_t> eos_token_ids;

  bool multimodal() const { return vision.has_value(); }
};

// Upper bounds on what a config may declare: far above any Gemma 3 (the 27B has 62 layers, width 5376,
// a 262208-token vocabulary, 131072 positions), low enough that a hostile config.json or GGUF header
// cannot make medlab allocate or loop on its numbers before the tensors are checked against them.
inline constexpr int64_t kMaxConfigLayers = 1024;
inline constexpr int64_t kMaxConfigSize = int64_t(1) << 24;       // widths, head counts and sizes, vocabulary, positions
inline constexpr int64_t kMaxConfigImageSide = int64_t(1) << 14;  // vision image_size and patch_size, in pixels
inline constexpr uint64_t kMaxConfigFileBytes = 4u << 20;         // config.json; the published ones are ~2 KB

// Parses and validates config.json; `source` (the file's path) prefixes every error message.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);
ModelConfig load_model_config(const std::string& path);
nlohmann::json model_config_to_json(const ModelConfig& config);  // the HF config.json medlab writes

}  // namespace medlab
