// weights.lock: what a model folder held and how it behaved when the lock was written, so that a later
// `medlab verify` can tell whether it is still the same model. A JSON file, pretty-printed with a fixed
// key order and no timestamps: the same model written twice gives the same bytes.
//
//   {"format": "medlab-weights-lock/1", "engine_version": "0.1.0", "model_sha256": "...",
//    "files": [{"name": "model-00001-of-00002.safetensors", "size": 4961251752, "sha256": "..."}, ...],
//    "adapters": [{"name": "chest-lora", "sha256": "...", "scale": 1, "merged": false}],
//    "fingerprint": {"prompt": ..., "image": ..., "top3_logit_l2": "37.512345", "top20_ids": [...],
//                    "top20_ids_sha256": "...", "tolerance": 0.0001}}
//
// "adapters" (repro/weights.h's AdapterHash, in the order they were applied) is there only when the model
// was locked with LoRA adapters, so that locks of plain models read and compare as before.
//
// File names are relative to the model folder (a .gguf file and its mmproj: the file name). The fingerprint
// is repro/fingerprint.h's; its top3_logit_l2 matches when the relative difference is at most the tolerance
// (the kernels' summation orders differ by ISA: scalar and AVX2 agreed within 2e-7 on the test models), its
// token ids exactly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "repro/fingerprint.h"
#include "repro/weights.h"

namespace medlab {

inline constexpr const char* kWeightsLockFormat = "medlab-weights-lock/1";
inline constexpr double kDefaultFingerprintTolerance = 1e-4;

struct LockedFile {
  std::string name;
  uint64_t size = 0;
  std::string sha256;
};

struct WeightsLock {
  std::string engine_version;
  std::string model_sha256;
  std::vector<LockedFile> files;
  std::vector<AdapterHash> adapters;
  Fingerprint fingerprint;  // top3_logit_l2 as read from its 6 decimals
  double tolerance = kDefaultFingerprintTolerance;
};

// The lock of a model whose files (and adapters) were hashed from the checkpoint in `model_dir`.
WeightsLock make_lock(const WeightHashes& hashes, const std::filesystem::path& model_dir, const Fingerprint& fingerprint,
                      double tolerance);

std::string lock_text(const WeightsLock& lock);
// Strict: every field present with its type, nothing unknown, hashes 64 hex digits, the ids' hash agreeing
// with the ids; errors name `source` and the field ("weights.lock: field files[2].sha256 missing").
WeightsLock parse_lock(const std::string& text, const std::string& source);
WeightsLock read_lock(const std::filesystem::path& path);  // a missing file says how to write one
void write_lock(const WeightsLock& lock, const std::filesystem::path& path);

// One comparison of the lock with the model: "sha256 model.safetensors", "adapter chest-lora sha256",
// "fingerprint top3_logit_l2".
struct LockCheck {
  std::string subject;
  bool ok = true;
  std::string detail;  // what differs ("MISMATCH expected ... found ..."); when ok, the figures compared or empty
};

// Every check of `found` (the model now) against `locked`; the top-3 L2 norm within `tolerance` (relative).
std::vector<LockCheck> compare_lock(const WeightsLock& locked, const WeightsLock& found, double tolerance);
// The failed checks as lines: "sha256 model.safetensors: expected ... found ...".
std::vector<std::string> lock_differences(const std::vector<LockCheck>& checks);

}  // namespace medlab
