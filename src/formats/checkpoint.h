// A Hugging Face checkpoint folder (config.json, tokenizer files, one or more safetensors shards),
// opened, mapped and checked against the config before any model code sees it.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "formats/gguf_reader.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace medlab {

// Where the parts of a Gemma 3 model sit in the tensor names. Three layouts exist:
//   transformers < 4.52 Gemma3ForConditionalGeneration: "language_model.model.", "vision_tower.vision_model.",
//   "multi_modal_projector."; later versions: "model.language_model.", "model.vision_tower.vision_model.",
//   "model.multi_modal_projector."; Gemma3ForCausalLM: "model." (no vision).
struct TensorLayout {
  std::string text;       // prefix of embed_tokens.weight, layers.N.*, norm.weight
  std::string vision;     // prefix of embeddings.*, encoder.layers.N.*, post_layernorm.*; empty if none
  std::string projector;  // prefix of mm_input_projection_weight, mm_soft_emb_norm.weight; empty if none
  std::string head;       // full name of the output head, stored only when not tied to embed_tokens
};
// The three layouts above, the published one first.
const std::vector<TensorLayout>& known_layouts();

// A name and shape the checkpoint must hold, derived from the config alone.
struct TensorSpec {
  std::string name;  // without layout prefix, e.g. "layers.3.self_attn.q_proj.weight"; the head: "lm_head.weight"
  enum class Part { Text, Vision, Projector, Head } part;
  std::vector<int64_t> shape;
};
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);
std::string full_name(const TensorLayout& layout, const TensorSpec& spec);
// The layout of the published MedGemma checkpoints (transformers 4.50), which medlab writes.
TensorLayout published_layout(const ModelConfig& config);

// model.safetensors.index.json: the tensor names each shard holds, by shard file name (so in shard order).
// Shards must be plain file names in the model's folder. Throws Error naming `where`.
std::map<std::string, std::set<std::string>> read_shard_index(std::string_view text, const std::string& where);

class LoraAdapter;

// A LoRA update applied beside a weight W [out, in] at run time: W x + scale * B (A x), with A [rank, in] and
// B [out, rank] viewed in the adapter's file.
struct LowRankTensors {
  TensorView down;  // A
  TensorView up;    // B
  float scale = 1;  // the adapter's scaling times the scale it was added with
};

class Checkpoint {
 public:
  // `model` is a folder, or a Hugging Face id ("google/medgemma-4b-it") looked up in `hf_hub_cache`
  // (the caller resolves HF_HOME / HF_HUB_CACHE / ~/.cache/huggingface/hub). Never downloads.
  // A path ending in .gguf is a llama.cpp "gemma3" file instead, with `mmproj` its vision projector
  // (gguf_checkpoint.cpp); its tensors get the names and shapes of the published HF layout.
  static Checkpoint open(const std::string& model, const std::optional<std::filesystem::path>& hf_hub_cache = {},
                         const std::optional<std::filesystem::path>& mmproj = {});

  const ModelConfig& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }
  const TensorLayout& layout() const { return layout_; }

  // The tensor `prefix + name` for a part; throws Error naming it if absent.
  const TensorView& text(const std::string& name) const;
  const TensorView& vision(const std::string& name) const;
  const TensorView& projector(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }  // full names
  std::vector<std::string> weight_files() const;  // absolute paths of the shards (or GGUF files), in order
  const GgufFile* gguf() const { return gguf_.empty() ? nullptr : gguf_.front().get(); }  // the text GGUF, if any

  // True when RMSNorm weights are stored as 1 + w (GGUF files); Hugging Face checkpoints store w.
  // Models read norms through this so both formats give the same scale.
  bool norms_include_one() const { return norms_include_one_; }

  // The mapped weight file that holds [data, data + bytes), or null (bytes the checkpoint owns).
  const MappedFile* mapping_of(const void* data, size_t bytes) const;

  // Replaces (or adds) the tensor `full_name` by data the checkpoint owns from now on: weights
  // quantized at load, NF4 blocks joined from their bitsandbytes parts. `view.data` must point into
  // `storage`. Bytes the checkpoint owned for the tensor replaced are freed: views of it end here.
  void adopt_tensor(const std::string& full_name, TensorView view, std::vector<uint8_t> storage);

  // Applies a LoRA adapter (formats/peft_adapter.h) opened for this checkpoint's config. Its modules_to_save
  // tensors replace the model's (a replaced lm_head unties the output head). Each adapted matrix then either
  // keeps its weights and gains a low-rank update the models apply at run time (merge false), or is replaced
  // by W + scale * scaling * B @ A in its stored dtype (quantized types are widened, updated and quantized
  // again). `scale` multiplies the adapter's own scaling. Uses `threads` threads to merge.
  void add_adapter(std::shared_ptr<const LoraAdapter> adapter, float scale, bool merge, int threads);
  struct AppliedAdapter {
    std::shared_ptr<const LoraAdapter> adapter;
    float scale = 1;
    bool merged = false;
  };
  const std::vector<AppliedAdapter>& adapters() const { return adapters_; }
  // The run-time updates of the tensor `full_name`, in the order their adapters were added.
  std::span<const LowRankTensors> low_rank(const std::string& full_name) const;

 private:
  static Checkpoint open_gguf(const std::filesystem::path& model, const std::optional<std::filesystem::path>& mmproj);

  std::filesystem::path dir_;
  ModelConfig config_;
  TensorLayout layout_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::unique_ptr<GgufFile>> gguf_;  // the model, then the mmproj
  std::map<std::string, TensorView> tensors_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> owned_;  // adopted tensors' bytes
  bool norms_include_one_ = false;
  std::vector<AppliedAdapter> adapters_;
  std::map<std::string, std::vector<LowRankTensors>> low_rank_;
};

// The standard cache folder from the environment, for the CLI to pass to Checkpoint::open.
std::filesystem::path default_hf_hub_cache();

}  // namespace medlab
