// What every result medlab writes carries (run --json, batch rows, serve answers, eval reports), so that
// a result can be tied to the exact weights, engine, kernels and sampler settings that produced it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/generation.h"

namespace medlab {

struct RunManifest {
  std::string model_sha256;  // see weights_sha256()
  std::string isa;           // the kernel set that ran
  std::string precision;     // "fast" or "exact"
  GenerationSettings generation;
};

// {"engine", "commit", "isa", "precision", "model_sha256", "seed", "sampler": {...}, "max_new_tokens", "stop"}
nlohmann::json manifest_json(const RunManifest& manifest);

}  // namespace medlab
