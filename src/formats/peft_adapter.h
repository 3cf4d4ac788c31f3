// PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors, as Hugging Face PEFT saves them for
// Gemma3ForConditionalGeneration or Gemma3ForCausalLM), read and checked against a model before use.
//
// Each adapted module W [out, in] gets scaling * B @ A, with A = lora_A [r, in], B = lora_B [out, r] and
// scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora), r and lora_alpha per module from
// rank_pattern / alpha_pattern. Modules named by modules_to_save are replaced whole by the adapter's copy.
// Dropout does nothing at inference. Checkpoint::add_adapter applies one, at run time or merged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"

namespace medlab {

// One --lora argument: "DIR" or "DIR:SCALE" (the scale multiplies the adapter's own scaling; default 1).
struct AdapterRequest {
  std::filesystem::path dir;
  float scale = 1;
};
AdapterRequest parse_adapter_request(std::string_view text);

class LoraAdapter {
 public:
  // A LoRA update of one linear layer.
  struct Module {
    std::string path;      // the module as the adapter names it: "language_model.model.layers.0.self_attn.q_proj"
    TensorSpec::Part part;
    std::string weight;    // the weight it updates, by spec name: "layers.0.self_attn.q_proj.weight"
    int64_t rank = 0;
    float scaling = 0;     // lora_alpha / r, or lora_alpha / sqrt(r)
    TensorView a, b;       // lora_A [rank, in], lora_B [out, rank], in the adapter's file
  };
  // A tensor of a modules_to_save module, which replaces the model's.
  struct Replacement {
    std::string path;  // as the adapter names it: "language_model.lm_head.weight"
    TensorSpec::Part part;
    std::string weight;  // by spec name ("embed_tokens.weight"; "lm_head.weight" for the head)
    TensorView tensor;
  };

  // Reads dir/adapter_config.json and dir/adapter_model.safetensors and checks them against `config`: every
  // module the adapter holds is a linear layer of the model with matching shapes, every module its
  // target_modules select has weights, and nothing is left over. Throws Error naming the file and module.
  static std::shared_ptr<const LoraAdapter> open(const std::filesystem::path& dir, const ModelConfig& config);

  const std::filesystem::path& dir() const { return dir_; }
  // Absolute paths of adapter_config.json and adapter_model.safetensors, the files its hash covers.
  const std::vector<std::string>& files() const { return files_; }
  const std::vector<Module>& modules() const { return modules_; }
  const std::vector<Replacement>& replacements() const { return replacements_; }
  const std::string& base_model() const { return base_model_; }  // base_model_name_or_path, as written

 private:
  std::filesystem::path dir_;
  std::vector<std::string> files_;
  std::string base_model_;
  std::unique_ptr<SafetensorsFile> file_;
  std::vector<Module> modules_;
  std::vector<Replacement> replacements_;
};

}  // namespace medlab
