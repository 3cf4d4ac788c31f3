// Hashes of a checkpoint's weight files: one SHA-256 per file (for weights.lock), and the model's SHA-256,
// which every result carries: the SHA-256 of the lines "<file sha256>  <file name>\n" in the checkpoint's
// order — what `cd DIR && sha256sum FILES... | sha256sum` prints, so anyone can recompute it. A LoRA
// adapter's SHA-256 is the same over its two files: `cd DIR && sha256sum adapter_config.json
// adapter_model.safetensors | sha256sum`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "formats/checkpoint.h"

namespace medlab {

struct WeightFileHash {
  std::string path;  // as the checkpoint opened it
  uint64_t size = 0;
  std::string sha256;
};

// A LoRA adapter applied to the model, as results and weights.lock name it.
struct AdapterHash {
  std::string name;    // the adapter's folder name
  std::string sha256;  // of its listing, as above
  float scale = 1;     // the --lora scale it was applied with
  bool merged = false;
};

struct WeightHashes {
  std::vector<WeightFileHash> files;
  std::string model_sha256;
  std::vector<AdapterHash> adapters;  // the checkpoint's, in the order they were applied
};

// Reads every weight file and adapter file, or, given `cache` (a JSON file of earlier hashes), only those whose
// path, size or modification time changed since; the cache is then updated. Hashing the 8.6 GB of a 4B model
// takes tens of seconds, too long for every `run --json`. Checks of integrity (medlab verify) pass no cache.
// `progress(done, total)` is called every few hundred MB read.
WeightHashes hash_weights(const Checkpoint& checkpoint,
                          const std::function<void(uint64_t done, uint64_t total)>& progress = {},
                          const std::optional<std::filesystem::path>& cache = {});

// The SHA-256 of the lines "<sha256>  <file name>\n" of `paths`, in order, with the cache as above.
std::string listing_sha256(const std::vector<std::string>& paths,
                           const std::optional<std::filesystem::path>& cache = {});

}  // namespace medlab
