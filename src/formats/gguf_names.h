// The one table between Hugging Face tensor names and llama.cpp's GGUF names for Gemma 3: the text
// model ("gemma3" GGUF) and the vision tower with its projector ("clip" mmproj GGUF). The exporters
// write through it and the GGUF checkpoint reader maps back through it, so the two cannot drift.
#pragma once

#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/model_config.h"

namespace medlab {

struct GgufTensorName {
  std::string gguf;         // "blk.3.attn_q.weight"
  TensorSpec::Part part;
  std::string hf;           // without layout prefix: "layers.3.self_attn.q_proj.weight"
  bool gemma_norm = false;  // a Gemma RMSNorm scale: HF stores w, GGUF stores 1 + w
};

// In the order llama.cpp's converter writes them.
std::vector<GgufTensorName> gguf_text_names(const TextConfig& text);
std::vector<GgufTensorName> gguf_mmproj_names(const VisionConfig& vision);

}  // namespace medlab
