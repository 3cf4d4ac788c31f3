// What every result medlab writes carries (run --json, batch rows, serve answers, eval reports), so that
// a result can be tied to the exact weights, engine, kernels and sampler settings that produced it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "repro/weights.h"
#include "runtime/generation.h"

namespace medlab {

struct RunManifest {
  std::string model_sha256;  // see hash_weights()
  std::string isa;           // the kernel set that ran
  std::string precision;     // "fast" or "exact"
  GenerationSettings generation;
  std::vector<AdapterHash> adapters;  // LoRA adapters applied to the model, in order
};

// Now, in UTC as ISO 8601: "2026-11-23T01:23:45Z".
std::string utc_timestamp();

// {"engine", "commit", "isa", "precision", "model_sha256", "seed", "sampler": {...}, "max_new_tokens", "stop"},
// and "adapters": [{"name", "sha256", "scale", "merged"}] only when there are any, so that manifests of
// models without adapters stay as they were.
nlohmann::json manifest_json(const RunManifest& manifest);

// A float setting as the double with the same shortest decimal form (0.8f as 0.8, not 0.800000011920929),
// so that JSON reads as the setting was written.
double json_setting(float value);

}  // namespace medlab
