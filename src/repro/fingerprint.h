// A behavioural fingerprint of a loaded model: what its weights compute, summarised in a few numbers, so
// that a weights.lock can tell a model that behaves differently from the one locked, not only one whose
// files differ.
//
// Definition (version 1; every lock depends on it, so it never changes silently):
//   - input: the user message kFingerprintPrompt in the Gemma 3 chat template with the generation prompt,
//     followed (multimodal models) by synthetic_image() (imaging/synthetic_image.h) after the question,
//     expanded and preprocessed as `medlab run --image` does; text-only models get the message alone;
//   - the whole model (vision tower, projector, decoder) in Precision::Exact, one prefill;
//   - from the logits of the first generated position: the L2 norm of the 3 largest logits (double), and
//     the 20 largest logits' token ids ranked by logit, ties to the lower id, written in decimal, joined
//     by commas ("2,818,5279,...") and hashed with SHA-256 (lower-case hex).
#pragma once

#include <string>
#include <vector>

#include "runtime/session.h"

namespace medlab {

inline constexpr const char* kFingerprintPrompt = "Describe this chest X-ray.";
inline constexpr const char* kFingerprintImage = "synthetic 896x896 grey gradient with rings (medlab synthetic_image)";

struct Fingerprint {
  std::string prompt;  // kFingerprintPrompt
  std::string image;   // kFingerprintImage, or "none" for a model without a vision tower
  double top3_logit_l2 = 0;
  std::vector<TokenId> top20_ids;
  std::string top20_ids_sha256;
};

Fingerprint behavioural_fingerprint(const LoadedModel& model, ThreadPool& pool, const KernelTable& kernels);

// The ids as the fingerprint hashes them: "2,818,5279".
std::string joined_ids(const std::vector<TokenId>& ids);
std::string ids_sha256(const std::vector<TokenId>& ids);

// A value as locks write it: 6 decimals, "12.345678".
std::string six_decimals(double value);

}  // namespace medlab
