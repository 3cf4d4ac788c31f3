// Random-weight Gemma 3 checkpoints laid out exactly like the published MedGemma ones, for tests and
// benchmarks that need a model but not a trained one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/checkpoint.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace medlab {

struct TestModelOptions {
  std::string preset = "tiny";  // one of test_model_presets()
  uint64_t seed = 0;            // same preset, seed and dtype: byte-identical weights
  DType dtype = DType::BF16;    // the published checkpoints are bf16
  std::string tokenizer_dir;    // holds tokenizer.json and tokenizer_config.json to copy; empty: write none
  bool nf4 = false;             // the decoder's linear weights as a bitsandbytes 4-bit (QLoRA) checkpoint saves them
};

// "tiny" (multimodal, 2 shards), "tiny-text" (Gemma3ForCausalLM shaped like 27B, 1 file), "small-text"
// (text-only, rows of whole K-quant super-blocks, 1 file),
// "full4b" (medgemma-4b-it's exact dimensions, 2 shards, ~8.6 GB).
std::vector<std::string> test_model_presets();

// The config.json a preset writes (throws Error naming the preset if unknown).
ModelConfig test_model_config(const std::string& preset);

// Writes config.json, the weights (streamed: one tensor in memory at a time), the tokenizer and
// processor files, and medlab_test_model.json, the marker saying the weights are random. Files of an
// earlier model in out_dir that could be mistaken for this one's (weights, index) are removed first.
void write_test_checkpoint(const TestModelOptions& options, const std::string& out_dir);

// The pieces test adapters are made of (formats/test_adapter.h). Values come from streams seeded by (seed,
// name), so a tensor's bytes depend on nothing else.
// A tensor of the preset with make-test-model's scales for it, appended to `writer`.
void append_test_tensor(SafetensorsWriter& writer, const TensorSpec& spec, const std::string& name,
                        const TextConfig& text, DType dtype, uint64_t seed);
// numel values drawn from N(mean, stddev), appended to `writer` in `dtype` (f32, f16 or bf16).
void append_normal_tensor(SafetensorsWriter& writer, const std::string& name, int64_t numel, float mean, float stddev,
                          DType dtype, uint64_t seed);

}  // namespace medlab
