// Hashes of a checkpoint's weight files: one SHA-256 per file (for weights.lock) and the model's SHA-256
// (the bytes of all weight files, one after another in the checkpoint's order), which every result carries.
#pragma once

#include <cstdint>
#include <functional>
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

// Reads every weight file once. `progress(done, total)` is called every few hundred MB.
WeightHashes hash_weights(const Checkpoint& checkpoint,
                          const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace medlab
