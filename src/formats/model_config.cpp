#include "formats/model_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace medlab {
namespace {

using nlohmann::json;

std::string describe(const json& value) {
  std::string dumped = value.dump();
  return dumped.size() > 60 ? dumped.substr(0, 57) + "..." : dumped;
}

// Reads the fields of one JSON object ("" for the top level, "text_config." for a nested one). Fields
// that transformers gives a default are optional here too, with the same default, since real configs
// (google/gemma-3-4b-it) leave many of them out.
class Fields {
 public:
  Fields(const json& object, std::string prefix, const std::string& source)
      : object_(object), prefix_(std::move(prefix)), source_(source) {}

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }

  [[noreturn]] void bad(const char* key, const std::string& what) const {
    fail(source_, ": ", prefix_, key, " ", what);
  }

  const json& required(const char* key) const {
    if (!object_.contains(key)) bad(key, "is missing");
    return object_.at(key);
  }

  int64_t integer(const char* key, std::optional<int64_t> fallback = {}) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      required(key);
    }
    const json& v = object_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    // A float with an integral value (1024.0) is what some exporters write.
    if (v.is_number_float() && std::nearbyint(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 1e15)
      return int64_t(v.get<double>());
    bad(key, "must be an integer, found " + describe(v));
  }

  int64_t positive(const char* key, std::optional<int64_t> fallback = {}, int64_t max = kMaxConfigSize) const {
    const int64_t v = integer(key, fallback);
    if (v <= 0) bad(key, "must be positive, found " + std::to_string(v));
    if (v > max) bad(key, "must be at most " + std::to_string(max) + ", found " + std::to_string(v));
    return v;
  }

  double number(const char* key, std::optional<double> fallback = {}) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      required(key);
    }
    const json& v = object_.at(key);
    if (!v.is_number()) bad(key, "must be a number, found " + describe(v));
    return v.get<double>();
  }

  double positive_number(const char* key, std::optional<double> fallback = {}) const {
    const double v = number(key, fallback);
    if (!(v > 0) || !std::isfinite(v)) bad(key, "must be a positive number, found " + describe(object_.at(key)));
    return v;
  }

  std::optional<double> optional_number(const char* key) const {
    if (!has(key)) return std::nullopt;
    return number(key);
  }

  std::string string(const char* key, std::optional<std::string> fallback = {}) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      required(key);
    }
    const json& v = object_.at(key);
    if (!v.is_string()) bad(key, "must be a string, found " + describe(v));
    return v.get<std::string>();
  }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_boolean()) bad(key, "must be true or false, found " + describe(v));
    return v.get<bool>();
  }

  const json& object(const char* key) const {
    const json& v = required(key);
    if (!v.is_object()) bad(key, "must be an object, found " + describe(v));
    return v;
  }

  const json& at(const char* key) const { return object_.at(key); }
  const std::string& prefix() const { return prefix_; }

 private:
  const json& object_;
  std::string prefix_;
  const std::string& source_;
};

// Sliding layers follow layer_types when given, else Gemma3TextConfig's rule: every
// sliding_window_pattern-th layer (1-based) is full attention.
std::vector<bool> parse_layer_kinds(const Fields& f, int64_t layers) {
  const bool has_pattern = f.has("sliding_window_pattern");
  const int64_t pattern = f.positive("sliding_window_pattern", 6);
  std::vector<bool> from_pattern(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) from_pattern[size_t(i)] = (i + 1) % pattern != 0;
  if (!f.has("layer_types")) return from_pattern;

  const json& types = f.at("layer_types");
  if (!types.is_array()) f.bad("layer_types", "must be a list, found " + describe(types));
  if (int64_t(types.size()) != layers)
    f.bad("layer_types",
          "has " + std::to_string(types.size()) + " entries but num_hidden_layers is " + std::to_string(layers));
  std::vector<bool> sliding(static_cast<size_t>(layers));
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != "sliding_attention" && types[i] != "full_attention")
      f.bad("layer_types", "[" + std::to_string(i) + "] must be \"sliding_attention\" or \"full_attention\", found " +
                               describe(types[i]));
    sliding[i] = types[i] == "sliding_attention";
  }
  if (has_pattern && sliding != from_pattern)
    f.bad("layer_types", "disagrees with sliding_window_pattern " + std::to_string(pattern) +
                             " (a full_attention layer every " + std::to_string(pattern) + " layers)");
  return sliding;
}

// The scaling factor of one RoPE settings object ({"rope_type": "linear", "factor": 8}). Only linear
// scaling (the 4B and 27B checkpoints) is implemented; anything else is refused rather than run with
// silently wrong positions.
double linear_factor(const Fields& f, const std::string& key, const json& rope) {
  if (!rope.is_object()) f.bad(key.c_str(), "must be an object, found " + describe(rope));
  const json type_json = rope.contains("rope_type") ? rope.at("rope_type") : rope.value("type", json("default"));
  if (!type_json.is_string()) f.bad(key.c_str(), "rope_type must be a string, found " + describe(type_json));
  const std::string type = type_json.get<std::string>();
  if (type == "default") return 1.0;
  if (type != "linear") f.bad(key.c_str(), "type '" + type + "' is not supported (only 'linear')");
  if (!rope.contains("factor") || !rope.at("factor").is_number() || !(rope.at("factor").get<double>() > 0))
    f.bad(key.c_str(), "needs a positive 'factor'");
  return rope.at("factor").get<double>();
}

double rope_theta_of(const Fields& f, const std::string& key, const json& rope, double fallback) {
  if (!rope.contains("rope_theta")) return fallback;
  const json& theta = rope.at("rope_theta");
  if (!theta.is_number() || !(theta.get<double>() > 0))
    f.bad(key.c_str(), "rope_theta must be a positive number, found " + describe(theta));
  return theta.get<double>();
}

// RoPE settings: transformers 4.x writes rope_theta, rope_local_base_freq and rope_scaling; 5.x writes
// rope_parameters, one object per layer type. Both are read so neither silently falls back to defaults.
void parse_rope(const Fields& f, TextConfig& t) {
  t.rope_theta = f.positive_number("rope_theta", 1e6);
  t.rope_local_base_freq = f.positive_number("rope_local_base_freq", 1e4);
  t.rope_linear_factor = f.has("rope_scaling") ? linear_factor(f, "rope_scaling", f.at("rope_scaling")) : 1.0;
  if (!f.has("rope_parameters")) return;
  const json& params = f.object("rope_parameters");
  if (!params.contains("full_attention") && !params.contains("sliding_attention")) {  // one set for all layers
    t.rope_theta = rope_theta_of(f, "rope_parameters", params, t.rope_theta);
    t.rope_linear_factor = linear_factor(f, "rope_parameters", params);
    return;
  }
  if (params.contains("full_attention")) {
    const json& full = params.at("full_attention");
    t.rope_linear_factor = linear_factor(f, "rope_parameters.full_attention", full);
    t.rope_theta = rope_theta_of(f, "rope_parameters.full_attention", full, t.rope_theta);
  }
  if (params.contains("sliding_attention")) {
    const json& local = params.at("sliding_attention");
    if (linear_factor(f, "rope_parameters.sliding_attention", local) != 1.0)
      f.bad("rope_parameters.sliding_attention", "scaling is not supported on sliding-window layers");
    t.rope_local_base_freq = rope_theta_of(f, "rope_parameters.sliding_attention", local, t.rope_local_base_freq);
  }
}

TextConfig parse_text(const Fields& f) {
  TextConfig t;
  // Defaults are Gemma3TextConfig's.
  t.vocab_size = f.positive("vocab_size", 262208);
  t.hidden_size = f.positive("hidden_size", 2304);
  t.intermediate_size = f.positive("intermediate_size", 9216);
  t.num_hidden_layers = f.positive("num_hidden_layers", 26, kMaxConfigLayers);
  t.num_attention_heads = f.positive("num_attention_heads", 8);
  t.num_key_value_heads = f.positive("num_key_value_heads", 4);
  t.head_dim = f.positive("head_dim", 256);
  t.max_position_embeddings = f.positive("max_position_embeddings", 131072);
  t.sliding_window = f.positive("sliding_window", 4096);
  t.query_pre_attn_scalar = f.positive_number("query_pre_attn_scalar", 256);
  t.rms_norm_eps = f.positive_number("rms_norm_eps", 1e-6);
  parse_rope(f, t);
  t.attn_logit_softcapping = f.optional_number("attn_logit_softcapping");
  t.final_logit_softcapping = f.optional_number("final_logit_softcapping");
  t.layer_is_sliding = parse_layer_kinds(f, t.num_hidden_layers);

  if (t.num_attention_heads % t.num_key_value_heads != 0)
    f.bad("num_attention_heads", "(" + std::to_string(t.num_attention_heads) +
                                     ") must be a multiple of num_key_value_heads (" +
                                     std::to_string(t.num_key_value_heads) + ")");
  if (t.head_dim % 2 != 0) f.bad("head_dim", "must be even for rotary embeddings, found " + std::to_string(t.head_dim));
  const std::string activation = f.string("hidden_activation", f.string("hidden_act", "gelu_pytorch_tanh"));
  if (activation != "gelu_pytorch_tanh")
    f.bad("hidden_activation", "'" + activation + "' is not supported (expected gelu_pytorch_tanh)");
  if (f.boolean("attention_bias", false)) f.bad("attention_bias", "true is not supported (Gemma 3 has no biases)");
  t.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  return t;
}

VisionConfig parse_vision(const Fields& f) {
  const std::string type = f.string("model_type", "siglip_vision_model");
  if (type != "siglip_vision_model")
    f.bad("model_type", "'" + type + "' is not supported (expected siglip_vision_model)");
  VisionConfig v;
  // Defaults are SiglipVisionConfig's.
  v.hidden_size = f.positive("hidden_size", 768);
  v.intermediate_size = f.positive("intermediate_size", 3072);
  v.num_hidden_layers = f.positive("num_hidden_layers", 12, kMaxConfigLayers);
  v.num_attention_heads = f.positive("num_attention_heads", 12);
  v.num_channels = f.positive("num_channels", 3);
  v.image_size = f.positive("image_size", 224, kMaxConfigImageSide);
  v.patch_size = f.positive("patch_size", 16, kMaxConfigImageSide);
  v.layer_norm_eps = f.positive_number("layer_norm_eps", 1e-6);
  if (v.hidden_size % v.num_attention_heads != 0)
    f.bad("hidden_size", "(" + std::to_string(v.hidden_size) + ") must be a multiple of num_attention_heads (" +
                             std::to_string(v.num_attention_heads) + ")");
  if (v.image_size % v.patch_size != 0)
    f.bad("image_size", "(" + std::to_string(v.image_size) + ") must be a multiple of patch_size (" +
                            std::to_string(v.patch_size) + ")");
  const std::string activation = f.string("hidden_act", "gelu_pytorch_tanh");
  if (activation != "gelu_pytorch_tanh")
    f.bad("hidden_act", "'" + activation + "' is not supported (expected gelu_pytorch_tanh)");
  if (f.boolean("vision_use_head", false)) f.bad("vision_use_head", "true is not supported (Gemma 3 has no head)");
  return v;
}

std::vector<int64_t> parse_eos(const Fields& f) {
  if (!f.has("eos_token_id")) return {};
  const json& v = f.at("eos_token_id");
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (!v.is_array()) f.bad("eos_token_id", "must be an integer or a list of integers, found " + describe(v));
  std::vector<int64_t> ids;
  for (const json& id : v) {
    if (!id.is_number_integer()) f.bad("eos_token_id", "must be a list of integers, found " + describe(v));
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& source) {
  if (!j.is_object()) fail(source, ": expected a JSON object, found ", describe(j));
  const Fields top(j, "", source);
  ModelConfig c;

  if (top.has("architectures")) {
    const json& archs = top.at("architectures");
    if (!archs.is_array() || archs.empty() || !archs[0].is_string())
      top.bad("architectures", "must be a non-empty list of names, found " + describe(archs));
    c.architecture = archs[0].get<std::string>();
  }
  c.model_type = top.string("model_type");
  if (c.architecture.empty())  // older exports omit architectures; model_type then decides
    c.architecture = c.model_type == "gemma3" ? "Gemma3ForConditionalGeneration" : "Gemma3ForCausalLM";
  if (c.architecture != "Gemma3ForConditionalGeneration" && c.architecture != "Gemma3ForCausalLM")
    fail(source, ": architecture '", c.architecture,
         "' is not supported (expected Gemma3ForConditionalGeneration or Gemma3ForCausalLM)");
  const bool multimodal = c.architecture == "Gemma3ForConditionalGeneration";
  const char* expected_type = multimodal ? "gemma3" : "gemma3_text";
  if (c.model_type != expected_type)
    fail(source, ": model_type '", c.model_type, "' does not match architecture ", c.architecture, " (expected '",
         expected_type, "')");
  c.torch_dtype = top.string("torch_dtype", top.string("dtype", ""));

  if (!multimodal) {
    c.text = parse_text(top);
    c.eos_token_ids = parse_eos(top);
    return c;
  }

  const Fields text(top.object("text_config"), "text_config.", source);
  const std::string text_type = text.string("model_type", "gemma3_text");
  if (text_type != "gemma3_text") text.bad("model_type", "'" + text_type + "' is not supported (expected gemma3_text)");
  c.text = parse_text(text);
  // transformers ties by the top-level flag in some versions and by text_config's in others; either unties.
  c.text.tie_word_embeddings = c.text.tie_word_embeddings && top.boolean("tie_word_embeddings", true);
  c.vision = parse_vision(Fields(top.object("vision_config"), "vision_config.", source));
  c.mm_tokens_per_image = top.positive("mm_tokens_per_image", 256);
  c.boi_token_index = top.integer("boi_token_index", 255999);
  c.eoi_token_index = top.integer("eoi_token_index", 256000);
  c.image_token_index = top.integer("image_token_index", 262144);
  c.eos_token_ids = parse_eos(top.has("eos_token_id") ? top : text);

  // The projector average-pools the patch grid down to a square grid of mm_tokens_per_image.
  const int64_t patches_per_side = c.vision->image_size / c.vision->patch_size;
  const auto tokens_per_side = int64_t(std::llround(std::sqrt(double(c.mm_tokens_per_image))));
  if (tokens_per_side * tokens_per_side != c.mm_tokens_per_image || patches_per_side % tokens_per_side != 0)
    fail(source, ": mm_tokens_per_image ", c.mm_tokens_per_image, " must be a square whose side divides the ",
         patches_per_side, " patches per side of vision_config");
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open");
  std::error_code ec;
  if (const uintmax_t size = std::filesystem::file_size(path, ec); !ec && size > kMaxConfigFileBytes)
    fail(path, ": ", size, " bytes, more than the ", kMaxConfigFileBytes >> 20, " MiB a config.json may have");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
  return parse_model_config(j, path);
}

namespace {

// The sliding_window_pattern that reproduces layer_is_sliding, or 0 if none does.
int64_t pattern_of(const std::vector<bool>& sliding) {
  for (size_t p = 1; p <= sliding.size() + 1; ++p) {
    bool matches = true;
    for (size_t i = 0; i < sliding.size() && matches; ++i) matches = sliding[i] == ((i + 1) % p != 0);
    if (matches) return int64_t(p);
  }
  return 0;
}

json text_to_json(const TextConfig& t) {
  json j = {
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"attn_logit_softcapping", t.attn_logit_softcapping ? json(*t.attn_logit_softcapping) : json(nullptr)},
      {"final_logit_softcapping", t.final_logit_softcapping ? json(*t.final_logit_softcapping) : json(nullptr)},
      {"head_dim", t.head_dim},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"hidden_size", t.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", t.intermediate_size},
      {"max_position_embeddings", t.max_position_embeddings},
      {"num_attention_heads", t.num_attention_heads},
      {"num_hidden_layers", t.num_hidden_layers},
      {"num_key_value_heads", t.num_key_value_heads},
      // Written as an integer when it is one, as the published configs have it (256, 168).
      {"query_pre_attn_scalar", std::trunc(t.query_pre_attn_scalar) == t.query_pre_attn_scalar
                                    ? json(int64_t(t.query_pre_attn_scalar))
                                    : json(t.query_pre_attn_scalar)},
      {"rms_norm_eps", t.rms_norm_eps},
      {"rope_local_base_freq", t.rope_local_base_freq},
      {"rope_scaling",
       t.rope_linear_factor == 1.0 ? json(nullptr) : json{{"factor", t.rope_linear_factor}, {"rope_type", "linear"}}},
      {"rope_theta", t.rope_theta},
      {"sliding_window", t.sliding_window},
      {"use_cache", true},
      {"vocab_size", t.vocab_size},
  };
  if (!t.tie_word_embeddings) j["tie_word_embeddings"] = false;
  // The checkpoints medlab mirrors (transformers 4.50) write sliding_window_pattern; later ones add layer_types.
  if (const int64_t p = pattern_of(t.layer_is_sliding)) {
    j["sliding_window_pattern"] = p;
  } else {
    json types = json::array();
    for (bool s : t.layer_is_sliding) types.push_back(s ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
  }
  return j;
}

}  // namespace

json model_config_to_json(const ModelConfig& c) {
  const json eos = c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0]) : json(c.eos_token_ids);
  if (!c.multimodal()) {
    json j = text_to_json(c.text);
    j["architectures"] = {c.architecture};
    j["model_type"] = "gemma3_text";
    j["bos_token_id"] = 2;
    j["pad_token_id"] = 0;
    j["eos_token_id"] = eos;
    j["cache_implementation"] = "hybrid";
    j["torch_dtype"] = c.torch_dtype;
    j["transformers_version"] = "4.50.0";
    return j;
  }
  json text = text_to_json(c.text);
  text["model_type"] = "gemma3_text";
  const VisionConfig& v = *c.vision;
  json j = {
      {"architectures", {c.architecture}},
      {"boi_token_index", c.boi_token_index},
      {"eoi_token_index", c.eoi_token_index},
      {"eos_token_id", eos},
      {"image_token_index", c.image_token_index},
      {"initializer_range", 0.02},
      {"mm_tokens_per_image", c.mm_tokens_per_image},
      {"model_type", "gemma3"},
      {"text_config", text},
      {"torch_dtype", c.torch_dtype},
      {"transformers_version", "4.50.0"},
      {"vision_config",
       {{"attention_dropout", 0.0},
        {"hidden_act", "gelu_pytorch_tanh"},
        {"hidden_size", v.hidden_size},
        {"image_size", v.image_size},
        {"intermediate_size", v.intermediate_size},
        {"layer_norm_eps", v.layer_norm_eps},
        {"model_type", "siglip_vision_model"},
        {"num_attention_heads", v.num_attention_heads},
        {"num_channels", v.num_channels},
        {"num_hidden_layers", v.num_hidden_layers},
        {"patch_size", v.patch_size},
        {"vision_use_head", false}}},
  };
  if (!c.text.tie_word_embeddings) j["tie_word_embeddings"] = false;  // read from text_config or the top
  return j;
}

}  // namespace medlab
