// What every result medlab writes carries (run --json, batch rows, serve answers, eval reports), so that
// a result can be tied to the exact weights, engine, kernels and sampler settings that produced it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/generation.h"

namespace medlab {

struct RunManifest {
  std::string model_sha256;  // see hash_weights()
  std::string isa;           // the kernel set that ran
  std::string precision;     // "fast" or "exact"
  GenerationSettings generation;
};

// Now, in UTC as ISO 8601: "2026-11-23T01:23:45Z".
std::string utc_timestamp();

// {"engine", "commit", "isa", "precision", "model_sha256", "seed", "sampler": {...}, "max_new_tokens", "stop"}
nlohmann::json manifest_json(const RunManifest& manifest);

}  // namespace medlab
