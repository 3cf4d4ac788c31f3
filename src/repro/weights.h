// Hashes of a checkpoint's weight files: one SHA-256 per file (for weights.lock), and the model's SHA-256,
// which every result carries: the SHA-256 of the lines "<file sha256>  <file name>\n" in the checkpoint's
// order — what `cd DIR && sha256sum FILES... | sha256sum` prints, so anyone can recompute it.
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

struct WeightHashes {
  std::vector<WeightFileHash> files;
  std::string model_sha256;
};

// Reads every weight file, or, given `cache` (a JSON file of earlier hashes), only those whose path, size or
// modification time changed since; the cache is then updated. Hashing the 8.6 GB of a 4B model takes tens of
// seconds, too long for every `run --json`. Checks of integrity (medlab verify) pass no cache.
// `progress(done, total)` is called every few hundred MB read.
WeightHashes hash_weights(const Checkpoint& checkpoint,
                          const std::function<void(uint64_t done, uint64_t total)>& progress = {},
                          const std::optional<std::filesystem::path>& cache = {});

}  // namespace medlab
