#include "formats/gguf_names.h"

namespace medlab {

using Part = TensorSpec::Part;

std::vector<GgufTensorName> gguf_text_names(const TextConfig& text) {
  std::vector<GgufTensorName> names;
  const auto add = [&](std::string gguf, std::string hf) {
    const bool norm = hf.ends_with("norm.weight");  // every text norm is a Gemma RMSNorm
    names.push_back({std::move(gguf), Part::Text, std::move(hf), norm});
  };
  add("token_embd.weight", "embed_tokens.weight");
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attn_norm", "input_layernorm"},           {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},             {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},        {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"},        {"post_attention_norm", "post_attention_layernorm"},
      {"ffn_norm", "pre_feedforward_layernorm"},  {"ffn_gate", "mlp.gate_proj"},
      {"ffn_up", "mlp.up_proj"},                  {"ffn_down", "mlp.down_proj"},
      {"post_ffw_norm", "post_feedforward_layernorm"},
  };
  for (int64_t i = 0; i < text.num_hidden_layers; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".", layer = "layers." + std::to_string(i) + ".";
    for (const auto& [gguf, hf] : kLayer) add(blk + gguf + ".weight", layer + hf + ".weight");
  }
  add("output_norm.weight", "norm.weight");
  if (!text.tie_word_embeddings) names.push_back({"output.weight", Part::Head, "lm_head.weight", false});
  return names;
}

std::vector<GgufTensorName> gguf_mmproj_names(const VisionConfig& vision) {
  std::vector<GgufTensorName> names;
  const auto add = [&](std::string gguf, std::string hf) {
    names.push_back({std::move(gguf), Part::Vision, std::move(hf), false});  // SigLIP LayerNorms scale by w
  };
  // The conv kernel [hidden, 3, p, p] is ne [p, p, 3, hidden], the ggml_conv_2d kernel layout.
  add("v.patch_embd.weight", "embeddings.patch_embedding.weight");
  add("v.patch_embd.bias", "embeddings.patch_embedding.bias");
  add("v.position_embd.weight", "embeddings.position_embedding.weight");
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attn_q", "self_attn.q_proj"},     {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
      {"attn_out", "self_attn.out_proj"}, {"ln1", "layer_norm1"},         {"ln2", "layer_norm2"},
      {"ffn_up", "mlp.fc1"},              {"ffn_down", "mlp.fc2"},
  };
  for (int64_t i = 0; i < vision.num_hidden_layers; ++i) {
    const std::string blk = "v.blk." + std::to_string(i) + ".", layer = "encoder.layers." + std::to_string(i) + ".";
    for (const auto& [gguf, hf] : kLayer)
      for (const char* part : {"weight", "bias"}) add(blk + gguf + "." + part, layer + hf + "." + part);
  }
  add("v.post_ln.weight", "post_layernorm.weight");
  add("v.post_ln.bias", "post_layernorm.bias");
  // [vision_hidden, text_hidden], used as x @ W: ne [text_hidden, vision_hidden], which clip.cpp
  // transposes before its matmul, so the values go in unchanged.
  names.push_back({"mm.input_projection.weight", Part::Projector, "mm_input_projection_weight", false});
  // A Gemma RMSNorm (1 + w) that clip.cpp applies as ggml_rms_norm * w.
  names.push_back({"mm.soft_emb_norm.weight", Part::Projector, "mm_soft_emb_norm.weight", true});
  return names;
}

}  // namespace medlab
