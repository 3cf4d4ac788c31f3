// Writing a checkpoint back out as a Hugging Face folder: what `medlab merge-lora` produces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "formats/checkpoint.h"

namespace medlab {

// Writes every tensor of `checkpoint` under its own names and dtypes, sorted by name, in one
// model.safetensors or, past 5 GB, in shards of at most 5 GB with model.safetensors.index.json (as
// transformers saves). Copies the folder's other files (tokenizer, processor and generation configs),
// with config.json's tie_word_embeddings set to false when the checkpoint's head is its own. Throws Error
// naming the tensor if one is block-quantized (merge into an f32, f16 or bf16 checkpoint).
// `progress(done, total)` is called as bytes are written.
void write_hf_checkpoint(const Checkpoint& checkpoint, const std::filesystem::path& out,
                         const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace medlab
