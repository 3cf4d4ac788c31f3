// Checkpoint::open for llama.cpp GGUF files: a "gemma3" text model and, optionally, its "clip" mmproj
// (projector type gemma3). The config comes from their metadata, the tensors are renamed to the
// published Hugging Face layout through the exporters' name table, their shapes reversed to HF order
// and checked against expected_tensors(config) as a folder's would be. Norm scales stay as GGUF
// stores them, 1 + w (norms_include_one).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf_names.h"

namespace fs = std::filesystem;

namespace medlab {
namespace {

std::optional<int64_t> token_id(const GgufFile& f, const std::string& text) {
  if (!f.has("tokenizer.ggml.tokens")) return std::nullopt;
  const std::vector<std::string>& tokens = f.strings("tokenizer.ggml.tokens");
  const auto it = std::find(tokens.begin(), tokens.end(), text);
  if (it == tokens.end()) return std::nullopt;
  return int64_t(it - tokens.begin());
}

int64_t positive(const GgufFile& f, const std::string& key, std::optional<int64_t> fallback = {},
                 int64_t max = kMaxConfigSize) {
  const int64_t v = fallback && !f.has(key) ? *fallback : f.integer(key);
  if (v <= 0) fail(f.path(), ": metadata '", key, "' must be positive, found ", v);
  if (v > max) fail(f.path(), ": metadata '", key, "' must be at most ", max, ", found ", v);
  return v;
}

// What GGUF leaves out is filled as llama.cpp's gemma3 does (src/models/gemma3.cpp): layers are
// sliding only when attention.sliding_window is set, then in a repeating pattern of period
// attention.sliding_window_pattern (default 6) ending in one full layer, with rope.freq_base_swa
// (default 10000) as their base; queries are scaled by 1/sqrt(head_dim), except for the 27B (62
// layers), which uses 1/sqrt(hidden / heads); there is no attention soft-capping.
TextConfig text_config(const GgufFile& f, int64_t vocab_rows) {
  TextConfig t;
  t.vocab_size = vocab_rows;
  t.hidden_size = positive(f, "gemma3.embedding_length");
  t.intermediate_size = positive(f, "gemma3.feed_forward_length");
  t.num_hidden_layers = positive(f, "gemma3.block_count", {}, kMaxConfigLayers);
  t.num_attention_heads = positive(f, "gemma3.attention.head_count");
  t.num_key_value_heads = positive(f, "gemma3.attention.head_count_kv", t.num_attention_heads);
  t.head_dim = positive(f, "gemma3.attention.key_length", t.hidden_size / t.num_attention_heads);
  if (positive(f, "gemma3.attention.value_length", t.head_dim) != t.head_dim)
    fail(f.path(), ": gemma3.attention.value_length differs from key_length, which Gemma 3 never does");
  if (t.num_attention_heads % t.num_key_value_heads != 0 || t.head_dim % 2 != 0)
    fail(f.path(), ": ", t.num_attention_heads, " heads, ", t.num_key_value_heads, " kv heads, head size ", t.head_dim,
         ": heads must be a multiple of kv heads and the head size even");
  t.max_position_embeddings = positive(f, "gemma3.context_length");
  t.rms_norm_eps = f.number("gemma3.attention.layer_norm_rms_epsilon");
  if (!(t.rms_norm_eps > 0)) fail(f.path(), ": gemma3.attention.layer_norm_rms_epsilon must be positive");
  t.rope_theta = f.optional_number("gemma3.rope.freq_base").value_or(10000.0);
  if (f.has("gemma3.rope.scaling.type")) {
    const std::string& type = f.string("gemma3.rope.scaling.type");
    if (type == "linear") {
      t.rope_linear_factor = f.number("gemma3.rope.scaling.factor");
    } else if (type != "none") {
      fail(f.path(), ": gemma3.rope.scaling.type '", type, "' is not supported (only linear)");
    }
  }
  if (!(t.rope_theta > 0) || !(t.rope_linear_factor > 0)) fail(f.path(), ": rope base and scale must be positive");

  const int64_t window = f.optional_integer("gemma3.attention.sliding_window").value_or(0);
  t.layer_is_sliding.assign(size_t(t.num_hidden_layers), false);
  if (window > 0) {
    t.sliding_window = window;
    const int64_t period = f.optional_integer("gemma3.attention.sliding_window_pattern").value_or(6);
    if (period < 0) fail(f.path(), ": gemma3.attention.sliding_window_pattern is negative");
    for (int64_t il = 0; il < t.num_hidden_layers; ++il)
      t.layer_is_sliding[size_t(il)] = period == 0 || il % period < period - 1;
    t.rope_local_base_freq = f.optional_number("gemma3.rope.freq_base_swa").value_or(10000.0);
  } else {
    t.sliding_window = t.max_position_embeddings;  // unused: no layer slides
  }
  t.query_pre_attn_scalar = t.num_hidden_layers == 62 ? double(t.hidden_size / t.num_attention_heads)
                                                      : double(t.head_dim);
  t.final_logit_softcapping = f.optional_number("gemma3.final_logit_softcapping");
  if (t.final_logit_softcapping && *t.final_logit_softcapping == 0) t.final_logit_softcapping.reset();
  return t;
}

// The mmproj's vision tower, checked to be what medlab's SigLIP path computes.
VisionConfig vision_config(const GgufFile& f, const TextConfig& text, int64_t& tokens_per_image) {
  const std::string& arch = f.string("general.architecture");
  if (arch != "clip") fail(f.path(), ": general.architecture is '", arch, "'; an mmproj is 'clip'");
  const std::string& projector = f.string("clip.projector_type");
  if (projector != "gemma3") fail(f.path(), ": clip.projector_type is '", projector, "'; medlab reads gemma3");
  if (!f.boolean("clip.has_vision_encoder", false)) fail(f.path(), ": clip.has_vision_encoder is not true");
  if (!f.boolean("clip.use_gelu", false))
    fail(f.path(), ": clip.use_gelu is not true (SigLIP's tanh GELU); quick GELU is not supported");
  VisionConfig v;
  v.image_size = positive(f, "clip.vision.image_size", {}, kMaxConfigImageSide);
  v.patch_size = positive(f, "clip.vision.patch_size", {}, kMaxConfigImageSide);
  v.hidden_size = positive(f, "clip.vision.embedding_length");
  v.intermediate_size = positive(f, "clip.vision.feed_forward_length");
  v.num_hidden_layers = positive(f, "clip.vision.block_count", {}, kMaxConfigLayers);
  v.num_attention_heads = positive(f, "clip.vision.attention.head_count");
  v.layer_norm_eps = f.number("clip.vision.attention.layer_norm_epsilon");
  if (v.image_size % v.patch_size != 0 || v.hidden_size % v.num_attention_heads != 0)
    fail(f.path(), ": image size ", v.image_size, " / patch ", v.patch_size, " or width ", v.hidden_size, " / ",
         v.num_attention_heads, " heads does not divide");
  if (positive(f, "clip.vision.projection_dim", text.hidden_size) != text.hidden_size)
    fail(f.path(), ": clip.vision.projection_dim differs from the text model's width ", text.hidden_size);
  // medlab normalises pixels with mean = std = 0.5 (Gemma 3's processor); other values would be ignored.
  for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"})
    if (f.has(key))
      for (double x : f.numbers(key))
        if (std::abs(x - 0.5) > 1e-6) fail(f.path(), ": ", key, " holds ", x, "; medlab's preprocessing uses 0.5");
  const int64_t kernel = positive(f, "clip.vision.projector.scale_factor", 4);
  const int64_t side = v.image_size / v.patch_size;
  if (side % kernel != 0)
    fail(f.path(), ": clip.vision.projector.scale_factor ", kernel, " does not divide the ", side, " patches per side");
  tokens_per_image = (side / kernel) * (side / kernel);
  return v;
}

TensorView view_of(const GgufTensor& t) {
  return {t.dtype, std::vector<int64_t>(t.ne.rbegin(), t.ne.rend()), t.data};  // HF lists the row length last
}

}  // namespace

Checkpoint Checkpoint::open_gguf(const fs::path& model, const std::optional<fs::path>& mmproj) {
  Checkpoint ck;
  ck.norms_include_one_ = true;
  ck.dir_ = fs::absolute(model).parent_path();
  ck.gguf_.push_back(std::make_unique<GgufFile>(model.string()));
  const GgufFile& text = *ck.gguf_.front();
  if (mmproj) ck.gguf_.push_back(std::make_unique<GgufFile>(mmproj->string()));
  const GgufFile* vision = mmproj ? ck.gguf_.back().get() : nullptr;

  const std::string& arch = text.string("general.architecture");
  if (arch != "gemma3") fail(text.path(), ": general.architecture is '", arch, "'; medlab reads gemma3 GGUF files");
  const GgufTensor* embed = text.find_tensor("token_embd.weight");
  if (!embed || embed->ne.size() != 2) fail(text.path(), ": no 2-D tensor 'token_embd.weight'");
  ModelConfig& c = ck.config_;
  c.text = text_config(text, embed->ne[1]);
  c.text.tie_word_embeddings = text.find_tensor("output.weight") == nullptr;  // llama.cpp ties when it is absent
  if (text.has("tokenizer.ggml.tokens") && int64_t(text.strings("tokenizer.ggml.tokens").size()) != embed->ne[1])
    fail(text.path(), ": tokenizer.ggml.tokens has ", text.strings("tokenizer.ggml.tokens").size(),
         " entries but token_embd.weight has ", embed->ne[1], " rows");
  if (const auto eos = text.optional_integer("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {*eos};
  c.torch_dtype = std::string(dtype_name(embed->dtype));
  if (vision) {
    c.architecture = "Gemma3ForConditionalGeneration";
    c.model_type = "gemma3";
    c.vision = vision_config(*vision, c.text, c.mm_tokens_per_image);
    const auto id = [&](const char* token) {
      const auto found = token_id(text, token);
      if (!found) fail(text.path(), ": the vocabulary has no '", token, "', which images need");
      return *found;
    };
    c.boi_token_index = id("<start_of_image>");
    c.eoi_token_index = id("<end_of_image>");
    c.image_token_index = id("<image_soft_token>");
  } else {
    c.architecture = "Gemma3ForCausalLM";
    c.model_type = "gemma3_text";
  }
  ck.layout_ = published_layout(c);

  // Every tensor of each file renamed through the shared table; anything the table lacks is refused.
  std::unordered_map<std::string, GgufTensorName> text_names, vision_names;
  for (GgufTensorName& n : gguf_text_names(c.text)) text_names.emplace(n.gguf, std::move(n));
  if (vision)
    for (GgufTensorName& n : gguf_mmproj_names(*c.vision)) vision_names.emplace(n.gguf, std::move(n));
  std::unordered_map<std::string, std::string> source;  // HF full name -> "file: tensor 'gguf name'", for errors
  const auto adopt = [&](const GgufFile& file, const std::unordered_map<std::string, GgufTensorName>& names) {
    for (const GgufTensor& t : file.tensors()) {
      const auto it = names.find(t.name);
      if (it == names.end())
        fail(file.path(), ": unexpected tensor '", t.name, "' (not part of a Gemma 3 ",
             &file == &text ? "text model" : "mmproj", " with this metadata)");
      const std::string name =
          full_name(ck.layout_, TensorSpec{it->second.hf, it->second.part, {}});
      ck.tensors_.emplace(name, view_of(t));
      source.emplace(name, file.path() + ": tensor '" + t.name + "'");
    }
  };
  adopt(text, text_names);
  if (vision) adopt(*vision, vision_names);

  for (const TensorSpec& spec : expected_tensors(c)) {
    const std::string name = full_name(ck.layout_, spec);
    const auto it = ck.tensors_.find(name);
    if (it == ck.tensors_.end()) {
      const bool in_text = spec.part == TensorSpec::Part::Text || spec.part == TensorSpec::Part::Head;
      const auto& names = in_text ? text_names : vision_names;
      const auto gguf = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.second.hf == spec.name; });
      fail(in_text ? text.path() : vision->path(), ": missing tensor '",
           gguf == names.end() ? spec.name : gguf->first, "' (", spec.name, ")");
    }
    if (it->second.shape != spec.shape)
      fail(source.at(name), " (", spec.name, ") has shape ", shape_string(it->second.shape), " in HF order, expected ",
           shape_string(spec.shape), " from the metadata");
  }
  return ck;
}

}  // namespace medlab
