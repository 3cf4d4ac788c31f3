// Loading a model for use, and generating text with it.
//
// A LoadedModel (checkpoint, tokenizer, decoder) is immutable after loading and can be shared by any
// number of Sessions; a Session owns one sequence's state (KV cache, scratch) and is used by one
// thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/peft_adapter.h"
#include "model/gemma3.h"
#include "model/siglip.h"
#include "runtime/generation.h"
#include "runtime/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace medlab {

struct LoadedModel {
  LoadedModel(Checkpoint checkpoint, Tokenizer tokenizer, int load_threads = 1);

  Checkpoint checkpoint;
  Tokenizer tokenizer;
  Gemma3 decoder;
  std::unique_ptr<SiglipVision> vision;  // vision tower and projector, for multimodal checkpoints
  std::vector<TokenId> stop_tokens;  // eos ids from the config, <eos> and <end_of_turn>
  std::optional<std::string> test_model_note;  // set when the folder is a medlab random-weight test model
};

struct LoadOptions {
  std::optional<std::filesystem::path> hf_hub_cache;  // where Hugging Face ids are looked up
  std::optional<std::filesystem::path> mmproj;         // llama.cpp projector file beside a .gguf model
  std::optional<DType> quantize;                        // quantize the decoder's matrices at load
  std::vector<AdapterRequest> adapters;                 // PEFT LoRA adapters, applied in order
  bool merge_adapters = false;  // merge them into the weights (before quantizing) instead of running them beside
};

// Opens a folder, a cached Hugging Face id or a .gguf file, checks it, maps the weights, applies the
// adapters and loads the tokenizer.
std::unique_ptr<LoadedModel> load_model(const std::string& model, const LoadOptions& options);

// The tokenizer a GGUF file's tokenizer.ggml.* metadata describes; throws Error naming the file and key.
Tokenizer gguf_tokenizer(const GgufFile& file);

class Session {
 public:
  Session(const LoadedModel& model, int64_t n_ctx, ThreadPool& pool, const KernelTable& kernels,
          Precision precision = Precision::Exact);

  // Generates a continuation of prompt_tokens (which start with <bos>) from an empty cache; `images`
  // place soft tokens over the prompt's image placeholders. on_text receives the answer's text as it
  // becomes final (never text a stop string may still claim).
  GenerationResult generate(const std::vector<TokenId>& prompt_tokens, const GenerationSettings& settings,
                            const std::function<void(std::string_view)>& on_text = {},
                            std::span<const ImageEmbeddings> images = {});

  const Gemma3State& state() const { return state_; }

 private:
  const LoadedModel& model_;
  Gemma3State state_;
  Gemma3Workspace workspace_;
  std::vector<float> logits_;
};

}  // namespace medlab
