// Random-weight LoRA adapters in PEFT's exact layout (adapter_config.json + adapter_model.safetensors) for
// the test model presets, so adapter loading, merging and their agreement can be tested without a trained one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace medlab {

struct TestAdapterOptions {
  std::string preset = "tiny";  // the test model preset it adapts (test_model_presets())
  uint64_t seed = 0;
  int64_t rank = 8;
  double alpha = 16;
  bool use_rslora = false;
  DType dtype = DType::F32;  // PEFT keeps LoRA weights in f32 by default
  // "all-linear" (every linear layer but the output head, vision tower included), or module names matched as
  // PEFT does (a whole name or a dotted suffix: "q_proj", "v_proj", "lm_head"). All-linear is saved, as
  // recent PEFT saves it, as the shortest list of suffixes that selects the same modules.
  std::vector<std::string> target_modules = {"all-linear"};
  std::vector<std::string> modules_to_save;  // "embed_tokens", "lm_head": saved whole, random
  bool new_layout = false;  // module names of transformers >= 4.52 ("model.language_model.") instead of 4.50's
};

// Writes the adapter into out_dir (created if needed), with medlab_test_adapter.json marking its weights random.
// The LoRA update of each module is about a third of its base output's size: B is drawn so that
// scaling * B @ A has rows of norm ~0.3 against W's ~1.
void write_test_adapter(const TestAdapterOptions& options, const std::string& out_dir);

}  // namespace medlab
