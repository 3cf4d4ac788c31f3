#include "runtime/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace medlab {
namespace {

// Philox 4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u, kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kMul0) * counter[0], p1 = uint64_t(kMul1) * counter[2];
    counter = {uint32_t(p1 >> 32) ^ counter[1] ^ key[0], uint32_t(p1), uint32_t(p0 >> 32) ^ counter[3] ^ key[1],
               uint32_t(p0)};
    key = {key[0] + kWeyl0, key[1] + kWeyl1};
  }
  return counter;
}

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());  // first of equals
}

}  // namespace

double philox_uniform(uint64_t seed, uint64_t counter) {
  const auto out = philox4x32({uint32_t(counter), uint32_t(counter >> 32), 0, 0}, {uint32_t(seed), uint32_t(seed >> 32)});
  const uint64_t bits = (uint64_t(out[0]) << 32 | out[1]) >> 11;  // 53 random bits
  return double(bits) * 0x1.0p-53;
}

int32_t sample_token(std::span<const float> logits, const SamplerSettings& s, std::span<const int32_t> history,
                     uint64_t step) {
  if (logits.empty()) fail("sampler: no logits");
  std::vector<float> adjusted(logits.begin(), logits.end());
  if (s.repetition_penalty != 1.0f) {
    if (s.repetition_penalty <= 0) fail("sampler: repetition penalty must be positive");
    std::vector<bool> seen(adjusted.size());
    for (int32_t t : history) {
      if (t < 0 || size_t(t) >= adjusted.size() || seen[size_t(t)]) continue;
      seen[size_t(t)] = true;
      float& l = adjusted[size_t(t)];
      l = l > 0 ? l / s.repetition_penalty : l * s.repetition_penalty;
    }
  }
  if (s.temperature <= 0.0f) return argmax(adjusted);

  // Candidates by descending logit, ties by id, so the order and hence the draw are reproducible. Only as
  // long a prefix is put in order as the truncations need: over a 262k vocabulary a full sort per token
  // costs more than a small model's forward pass.
  const size_t n = adjusted.size();
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) {
    return adjusted[size_t(a)] != adjusted[size_t(b)] ? adjusted[size_t(a)] > adjusted[size_t(b)] : a < b;
  };
  size_t sorted = 0;
  auto sort_prefix = [&](size_t count) {
    count = std::min(count, n);
    if (count <= sorted) return;
    std::partial_sort(order.begin() + std::ptrdiff_t(sorted), order.begin() + std::ptrdiff_t(count), order.end(), by_logit);
    sorted = count;
  };
  // Probabilities after temperature, normalised over the top-k candidates (all tokens without top-k).
  const size_t candidates = s.top_k > 0 ? std::min(n, size_t(s.top_k)) : n;
  if (candidates < n) sort_prefix(candidates);
  const double max = double(*std::max_element(adjusted.begin(), adjusted.end())) / s.temperature;
  std::vector<double> probs(n);  // by token id
  double sum = 0;
  for (size_t i = 0; i < candidates; ++i) {
    const size_t id = candidates < n ? size_t(order[i]) : i;
    sum += probs[id] = std::exp(double(adjusted[id]) / s.temperature - max);
  }
  for (size_t i = 0; i < n; ++i) probs[i] /= sum;

  size_t keep = candidates;
  if (s.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p (at least one token)
    double mass = 0;
    size_t k = 0;
    for (size_t want = 64; k < keep && mass < s.top_p; want *= 8) {
      sort_prefix(std::min(want, keep));
      while (k < sorted && mass < s.top_p) mass += probs[size_t(order[k++])];
    }
    keep = std::max<size_t>(k, 1);
  }
  if (s.min_p > 0.0f) {  // drop tokens less likely than min_p times the most likely
    sort_prefix(1);
    const double floor = double(s.min_p) * probs[size_t(order[0])];
    size_t k = 1;
    for (size_t want = 64; k < keep; want *= 8) {
      sort_prefix(std::min(want, keep));
      while (k < sorted && probs[size_t(order[k])] >= floor) ++k;
      if (k < sorted) break;
    }
    keep = k;
  }
  // The draw walks the kept tokens in order; untruncated, id order serves as well as any.
  if (keep == n && sorted < n) std::iota(order.begin(), order.end(), 0);
  else sort_prefix(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += probs[size_t(order[i])];
  const double target = philox_uniform(s.seed, step) * total;
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[size_t(order[i])];
    if (target < cumulative) return order[i];
  }
  return order[keep - 1];
}

TokenLogprobs token_logprobs(std::span<const float> logits, int32_t chosen, int32_t k) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - max);
  const double log_sum = std::log(sum) + max;
  TokenLogprobs out;
  out.chosen = float(double(logits[size_t(chosen)]) - log_sum);
  const size_t n = std::min(logits.size(), size_t(std::max(k, 0)));
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n), order.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
  });
  for (size_t i = 0; i < n; ++i) out.top.emplace_back(order[i], float(double(logits[size_t(order[i])]) - log_sum));
  return out;
}

}  // namespace medlab
