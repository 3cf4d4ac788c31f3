#include "kernels/attention.h"

#include <gtest/gtest.h>

#include "kernels/bf16_matmul.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace medlab {
namespace {

std::vector<std::pair<std::string, AttentionFn>> exact_versions_on_this_cpu() {
  std::vector<std::pair<std::string, AttentionFn>> versions{{"scalar", &attention_scalar}};
  if (AttentionFn avx2 = attention_avx2()) versions.emplace_back("avx2", avx2);
  return versions;
}

std::vector<std::pair<std::string, AttentionFn>> fast_versions_on_this_cpu() {
  std::vector<std::pair<std::string, AttentionFn>> versions;
  if (AttentionFn bf16 = attention_avx512_bf16()) versions.emplace_back("bf16", bf16);
  if (AttentionFn amx = attention_amx_bf16()) versions.emplace_back("amx", amx);
  return versions;
}

std::vector<std::pair<std::string, AttentionFn>> every_version_on_this_cpu() {
  std::vector<std::pair<std::string, AttentionFn>> versions = exact_versions_on_this_cpu();
  for (const auto& fast : fast_versions_on_this_cpu()) versions.push_back(fast);
  return versions;
}

double as_bf16(float v) { return bf16_to_f32(bf16_activation(v)); }

std::vector<float> random_values(int64_t n, float spread, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// A KV cache of `capacity` slots (position p in slot p % capacity) and query rows with their key ranges.
struct Case {
  int64_t head_dim, capacity;
  AttentionShape shape;
  std::vector<float> k, v, q;
  std::vector<int64_t> first, last;

  Case(int64_t hd, int64_t cap, int64_t n_rows, float spread, float softcap, std::mt19937& rng)
      : head_dim(hd), capacity(cap), shape{hd, float(1.0 / std::sqrt(double(hd))), softcap} {
    k = random_values(cap * hd, spread, rng);
    v = random_values(cap * hd, 1.0f, rng);
    q = random_values(n_rows * hd, spread, rng);
  }
  KvHead kv() const { return {k.data(), v.data(), head_dim, capacity}; }
  int64_t rows() const { return int64_t(first.size()); }

  // Rows [begin, end) through `fn` into out (rows() x head_dim).
  void run(AttentionFn fn, int64_t begin, int64_t end, std::vector<float>& out) const {
    std::vector<const float*> qs;
    std::vector<float*> outs;
    for (int64_t r = begin; r < end; ++r) {
      qs.push_back(q.data() + r * head_dim);
      outs.push_back(out.data() + r * head_dim);
    }
    fn({end - begin, qs.data(), outs.data(), first.data() + begin, last.data() + begin}, kv(), shape);
  }

  // softmax(q . k * scale, softcapped) v in float64, from q, k and v as given or rounded to bf16 first; the
  // largest scale * sum |q_d k_d| (f32 scores are only good to a few ulps of that, and the outputs follow
  // them), and per dim the mean of |v_d| under the softmax weights.
  std::vector<double> expect(int64_t r, double& magnitude, std::vector<double>* weighted_abs = nullptr,
                             bool bf16_inputs = false) const {
    auto in = [&](float x) { return bf16_inputs ? as_bf16(x) : double(x); };
    std::vector<double> scores;
    double max = -INFINITY;
    magnitude = 0;
    for (int64_t j = first[size_t(r)]; j <= last[size_t(r)]; ++j) {
      double dot = 0, abs_dot = 0;
      for (int64_t d = 0; d < head_dim; ++d) {
        const double product = in(q[size_t(r * head_dim + d)]) * in(k[size_t((j % capacity) * head_dim + d)]);
        dot += product;
        abs_dot += std::abs(product);
      }
      magnitude = std::max(magnitude, abs_dot * shape.scale);
      double s = dot * shape.scale;
      if (shape.softcap > 0) s = std::tanh(s / shape.softcap) * shape.softcap;
      scores.push_back(s);
      max = std::max(max, s);
    }
    double sum = 0;
    for (double& s : scores) sum += (s = std::exp(s - max));
    std::vector<double> out(size_t(head_dim), 0.0);
    if (weighted_abs) weighted_abs->assign(size_t(head_dim), 0.0);
    for (int64_t j = first[size_t(r)]; j <= last[size_t(r)]; ++j)
      for (int64_t d = 0; d < head_dim; ++d) {
        const double weight = scores[size_t(j - first[size_t(r)])] / sum;
        const double value = in(v[size_t((j % capacity) * head_dim + d)]);
        out[size_t(d)] += weight * value;
        if (weighted_abs) (*weighted_abs)[size_t(d)] += weight * std::abs(value);
      }
    return out;
  }
};

// The masks the models build, as key ranges: causal decoding with a sliding window over a ring buffer,
// a prompt whose image tokens see each other both ways, and SigLIP's full attention.
std::vector<Case> cases(std::mt19937& rng) {
  std::vector<Case> all;
  {
    // Gemma 3 prefill of 40 tokens after 90, group of 2 query heads per token, 16-key sliding window over
    // a 56-slot ring buffer; positions 100..109 are one image.
    Case c(16, 56, 80, 1.0f, 0.0f, rng);
    for (int64_t t = 0; t < 40; ++t)
      for (int g = 0; g < 2; ++g) {
        const int64_t position = 90 + t;
        const bool image = position >= 100 && position <= 109;
        c.first.push_back(std::min<int64_t>(std::max<int64_t>(0, position - 15), image ? 100 : position));
        c.last.push_back(image ? 109 : position);
      }
    all.push_back(std::move(c));
  }
  {
    // Global layer, causal from 0 with an image span, large head, scores spread wide, logit softcap.
    Case c(256, 150, 24, 3.0f, 50.0f, rng);
    for (int64_t t = 0; t < 24; ++t) {
      const int64_t position = 126 + t;
      const bool image = position >= 130 && position <= 140;
      c.first.push_back(0);
      c.last.push_back(image ? 140 : position);
    }
    all.push_back(std::move(c));
  }
  {
    // SigLIP: every query sees all 200 patches.
    Case c(72, 200, 37, 1.0f, 0.0f, rng);
    c.first.assign(37, 0);
    c.last.assign(37, 199);
    all.push_back(std::move(c));
  }
  {
    // Decode: one token far into a ring buffer whose window wraps, three query heads per KV head.
    Case c(8, 70, 3, 2.0f, 0.0f, rng);
    for (int64_t r = 0; r < 3; ++r) {
      c.first.push_back(1000 - 69);
      c.last.push_back(1000);
    }
    all.push_back(std::move(c));
  }
  return all;
}

TEST(Attention, MatchesFloat64ReferenceForEveryExactVersion) {
  std::mt19937 rng(5);
  for (const Case& c : cases(rng)) {
    for (const auto& [name, fn] : exact_versions_on_this_cpu()) {
      std::vector<float> out(size_t(c.rows() * c.head_dim));
      c.run(fn, 0, c.rows(), out);
      for (int64_t r = 0; r < c.rows(); ++r) {
        double magnitude;
        const std::vector<double> expect = c.expect(r, magnitude);
        for (int64_t d = 0; d < c.head_dim; ++d)
          ASSERT_NEAR(out[size_t(r * c.head_dim + d)], expect[size_t(d)], 1e-6 + 2e-7 * magnitude)
              << name << " head_dim " << c.head_dim << " row " << r << " dim " << d;
      }
    }
  }
}

// The fast versions against float64 on the same bf16-rounded q, k and v. Rounding each probability to bf16
// moves it by at most 2^-9 of itself, and renormalising by the rounded sum moves an output by at most twice
// that times the weighted mean of |v|; f32 sums of the exact bf16 products move the scores by about
// head_dim ulps of the magnitude, which moves the weights relatively by twice that.
TEST(Attention, FastBf16WithinTheBoundOfItsRounding) {
  if (fast_versions_on_this_cpu().empty()) GTEST_SKIP() << "this CPU lacks AVX512-BF16";
  std::mt19937 rng(5);
  for (const Case& c : cases(rng)) {
    for (const auto& [name, fn] : fast_versions_on_this_cpu()) {
      std::vector<float> out(size_t(c.rows() * c.head_dim));
      c.run(fn, 0, c.rows(), out);
      for (int64_t r = 0; r < c.rows(); ++r) {
        double magnitude;
        std::vector<double> weighted_abs;
        const std::vector<double> expect = c.expect(r, magnitude, &weighted_abs, true);
        const double relative = std::ldexp(1.0, -8) + 1e-4 + 4 * double(c.head_dim) * std::ldexp(magnitude, -23);
        for (int64_t d = 0; d < c.head_dim; ++d) {
          const double error = std::abs(out[size_t(r * c.head_dim + d)] - expect[size_t(d)]);
          ASSERT_LE(error, 1e-7 + relative * weighted_abs[size_t(d)])
              << name << " head_dim " << c.head_dim << " row " << r << " dim " << d;
        }
      }
    }
  }
}

// A row's bits depend only on its query, its range and the cache: the same alone, or in any group of rows.
TEST(Attention, RowBitsIndependentOfTheOtherRowsInTheCall) {
  std::mt19937 rng(9);
  for (const Case& c : cases(rng)) {
    for (const auto& [name, fn] : every_version_on_this_cpu()) {
      std::vector<float> together(size_t(c.rows() * c.head_dim)), alone(together.size()), split(together.size());
      c.run(fn, 0, c.rows(), together);
      for (int64_t r = 0; r < c.rows(); ++r) c.run(fn, r, r + 1, alone);
      const int64_t middle = c.rows() / 3;
      c.run(fn, 0, middle, split);
      c.run(fn, middle, c.rows(), split);
      EXPECT_EQ(std::memcmp(together.data(), alone.data(), together.size() * 4), 0) << name << " " << c.head_dim;
      EXPECT_EQ(std::memcmp(together.data(), split.data(), together.size() * 4), 0) << name << " " << c.head_dim;
    }
  }
}

}  // namespace
}  // namespace medlab
