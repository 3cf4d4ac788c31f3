#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/bf16_matmul.h"
#include "kernels/fast_elementwise.h"
#include "kernels/kernels.h"

namespace medlab {
namespace {

struct StoredWeights {
  std::vector<uint16_t> half;
  std::vector<float> full;
  std::vector<double> exact;  // the stored values, widened
  WeightMatrix view;
};

StoredWeights random_weights(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(0.05f, 1.0f);
  std::bernoulli_distribution negative(0.5);
  StoredWeights w;
  w.view = {dtype, rows, cols, nullptr};
  for (int64_t i = 0; i < rows * cols; ++i) {
    float v = dist(rng) * (negative(rng) ? -1.0f : 1.0f);  // never zero
    if (dtype == DType::F32) {
      w.full.push_back(v);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      v = dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      w.half.push_back(h);
    }
    w.exact.push_back(v);
  }
  w.view.data = dtype == DType::F32 ? static_cast<const void*>(w.full.data()) : w.half.data();
  return w;
}

std::vector<float> random_input(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) {
    do v = dist(rng);
    while (v == 0.0f);
  }
  return x;
}

std::vector<const KernelTable*> every_isa_on_this_cpu() { return available_kernels(); }

TEST(Matmul, MatchesFloat64ReferenceForEveryIsaAndDtype) {
  std::mt19937 rng(7);
  ThreadPool pool(2);
  for (const KernelTable* k : every_isa_on_this_cpu()) {
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
      for (auto [m, rows, cols] : {std::tuple{1, 37, 53}, {5, 64, 96}, {9, 33, 257}, {4, 16, 16}}) {
          const StoredWeights w = random_weights(dtype, rows, cols, rng);
          const std::vector<float> x = random_input(m * cols, rng);
          std::vector<float> y(size_t(m * rows));
          matmul(*k, pool, x.data(), m, w.view, y.data());
          for (int i = 0; i < m; ++i) {
            for (int r = 0; r < rows; ++r) {
              double expect = 0, magnitude = 0;
              for (int c = 0; c < cols; ++c) {
                expect += double(x[size_t(i * cols + c)]) * w.exact[size_t(r * cols + c)];
                magnitude += std::abs(double(x[size_t(i * cols + c)]) * w.exact[size_t(r * cols + c)]);
              }
              EXPECT_NEAR(y[size_t(i * rows + r)], expect, 1e-6 * magnitude + 1e-7)
                  << isa_name(k->isa) << " " << dtype_name(dtype) << " m=" << m << " r=" << r;
            }
          }
        }
    }
  }
}

// A row's result must not depend on which other rows share the call or on the thread count: a row alone
// takes the decode path, in a batch the packed one. The larger shapes span several K chunks and weight
// blocks per thread, with a K tail.
TEST(Matmul, BitIdenticalAcrossBatchCompositionAndThreads) {
  std::mt19937 rng(11);
  for (const KernelTable* k : every_isa_on_this_cpu()) {
    for (auto [dtype, m, rows, cols] : {std::tuple{DType::BF16, int64_t(7), int64_t(45), int64_t(300)},
                                         {DType::F16, 9, 130, 1100},
                                         {DType::F32, 6, 50, 1030}}) {
      const StoredWeights w = random_weights(dtype, rows, cols, rng);
      const std::vector<float> x = random_input(m * cols, rng);
      std::vector<float> batched(size_t(m * rows));
      ThreadPool two(2), one(1), three(3);
      matmul(*k, two, x.data(), m, w.view, batched.data());
      for (int64_t i = 0; i < m; ++i) {
        for (ThreadPool* pool : {&one, &three}) {
          std::vector<float> alone(static_cast<size_t>(rows));
          matmul(*k, *pool, x.data() + i * cols, 1, w.view, alone.data());
          EXPECT_EQ(std::memcmp(alone.data(), batched.data() + i * rows, size_t(rows) * 4), 0)
              << isa_name(k->isa) << " " << dtype_name(dtype) << " row " << i;
        }
      }
    }
  }
}

// Fast bf16 (bf16_matmul.h): the activations rounded to bf16, then the float64 dot product of what the
// kernels multiply; the scalar, avx2 and avx512 sets give the scalar reference's bits, and the amx set, whose
// order is its own, comes as close to float64. Over tails of every length class, decode tiles, prefill tiles
// and their edges, split over two threads.
TEST(Matmul, FastBf16MatchesFloat64AndTheScalarBitsForEveryIsa) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  for (auto [m, rows, cols] : {std::tuple{1, 37, 53}, {2, 19, 64}, {3, 40, 96}, {4, 16, 32}, {5, 33, 257},
                               {9, 13, 4304 / 8}, {1, 70, 2560 / 4}, {17, 9, 100}, {40, 50, 1152}, {16, 20, 4304}}) {
    const StoredWeights w = random_weights(DType::BF16, rows, cols, rng);
    const std::vector<float> x = random_input(m * cols, rng);
    std::vector<double> expect(size_t(m * rows)), magnitude(size_t(m * rows));
    for (int i = 0; i < m; ++i) {
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
          const double xb = bf16_to_f32(bf16_activation(x[size_t(i * cols + c)]));
          const double product = xb * w.exact[size_t(r * cols + c)];
          expect[size_t(i * rows + r)] += product;
          magnitude[size_t(i * rows + r)] += std::abs(product);
        }
      }
    }
    std::vector<float> reference(size_t(m * rows));
    matmul(scalar_kernels(), pool, x.data(), m, w.view, reference.data(), Precision::Fast);
    for (const KernelTable* k : every_isa_on_this_cpu()) {
      std::vector<float> y(size_t(m * rows));
      matmul(*k, pool, x.data(), m, w.view, y.data(), Precision::Fast);
      for (size_t i = 0; i < y.size(); ++i)
        EXPECT_NEAR(y[i], expect[i], 1e-6 * magnitude[i]) << isa_name(k->isa) << " m=" << m << " output " << i;
      if (k->isa != Isa::Amx)
        EXPECT_EQ(std::memcmp(y.data(), reference.data(), y.size() * 4), 0)
            << isa_name(k->isa) << " m=" << m << " rows=" << rows << " cols=" << cols;
    }
  }
}

// Each set's fast bf16 bits (the amx set's own included) do not depend on which rows share the call or on
// the thread count: decode rows alone, groups of 16 and their remainders, blocks of activation rows, weight
// rows past a thread's slice and the matrix's end, a K tail.
TEST(Matmul, FastBf16BitIdenticalAcrossBatchCompositionAndThreads) {
  std::mt19937 rng(13);
  for (auto [m, rows, cols] : {std::tuple{int64_t(37), int64_t(83), int64_t(4304 / 4)}, {20, 70, 2560 / 4},
                               {3, 45, 300}, {40, 20, 24592}}) {  // the last: the amx set's rows in 3 blocks
    const StoredWeights w = random_weights(DType::BF16, rows, cols, rng);
    const std::vector<float> x = random_input(m * cols, rng);
    ThreadPool two(2), one(1), three(3);
    for (const KernelTable* k : every_isa_on_this_cpu()) {
      std::vector<float> batched(size_t(m * rows));
      matmul(*k, two, x.data(), m, w.view, batched.data(), Precision::Fast);
      for (ThreadPool* pool : {&one, &three}) {
        std::vector<float> again(size_t(m * rows));
        matmul(*k, *pool, x.data(), m, w.view, again.data(), Precision::Fast);
        EXPECT_EQ(std::memcmp(again.data(), batched.data(), again.size() * 4), 0) << isa_name(k->isa) << " m=" << m;
      }
      for (int64_t i = 0; i < m; i += 5) {
        std::vector<float> alone(static_cast<size_t>(rows));
        matmul(*k, one, x.data() + i * cols, 1, w.view, alone.data(), Precision::Fast);
        EXPECT_EQ(std::memcmp(alone.data(), batched.data() + i * rows, size_t(rows) * 4), 0)
            << isa_name(k->isa) << " m=" << m << " row " << i;
      }
      if (m > 17) {  // a partial group behind a whole one, and the same rows leading a call
        std::vector<float> tail(size_t(17 * rows));
        matmul(*k, two, x.data() + (m - 17) * cols, 17, w.view, tail.data(), Precision::Fast);
        EXPECT_EQ(std::memcmp(tail.data(), batched.data() + (m - 17) * rows, tail.size() * 4), 0)
            << isa_name(k->isa) << " m=" << m;
      }
    }
  }
}

// The fast path really multiplies bf16 activations: an activation bf16 cannot hold changes the result, and
// the exact path keeps it.
TEST(Matmul, FastBf16RoundsActivationsAndExactDoesNot) {
  ThreadPool pool(1);
  const std::vector<uint16_t> w(32, f32_to_bf16(1.0f));
  std::vector<float> x(32, 0.0f);
  x[0] = 1.0f + 1.0f / 1024;  // 1 + 2^-10: bf16 keeps 7 fraction bits, so this rounds to 1
  float fast = 0, exact = 0;
  for (const KernelTable* k : every_isa_on_this_cpu()) {
    matmul(*k, pool, x.data(), 1, {DType::BF16, 1, 32, w.data()}, &fast, Precision::Fast);
    matmul(*k, pool, x.data(), 1, {DType::BF16, 1, 32, w.data()}, &exact, Precision::Exact);
    EXPECT_EQ(fast, 1.0f) << isa_name(k->isa);
    EXPECT_EQ(exact, x[0]) << isa_name(k->isa);
  }
}

TEST(Matmul, Bf16ActivationRounding) {
  EXPECT_EQ(bf16_activation(1.0f), 0x3f80);
  EXPECT_EQ(bf16_activation(-2.0f), 0xc000);
  EXPECT_EQ(bf16_activation(1.0f + 1.0f / 256), 0x3f80);      // halfway: to even
  EXPECT_EQ(bf16_activation(1.0f + 3.0f / 256), 0x3f82);      // halfway: to even, upwards
  EXPECT_EQ(bf16_activation(1e-40f), 0x0000);                 // subnormal: zero
  EXPECT_EQ(bf16_activation(-1e-40f), 0x8000);                // of its sign
  EXPECT_TRUE(std::isnan(bf16_to_f32(bf16_activation(std::nanf("")))));
}

TEST(Norms, RmsNormUsesScaleAsGiven) {
  const float x[4] = {1, -2, 3, -4};
  const float scale[4] = {1, 2, 0.5f, 1};
  float y[4];
  rms_norm(x, scale, y, 4, 1e-6f);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], x[i] / rms * scale[i], 1e-6);
}

TEST(Activations, GeluTanhKnownValues) {
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated in float64.
  for (double x : {-3.0, -1.0, -0.1, 0.5, 1.0, 2.5}) {
    const double expect = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR(gelu_tanh(float(x)), expect, 1e-6);
  }
  // The whole range against the float64 value of x / (1 + exp(-2y)): relative error, and far left (where
  // the float rounding of y itself moves exp(-2y) by a few 1e-6) tiny values within 1e-9.
  for (double step = -12; step <= 12; step += 0.0137) {
    const double x = double(float(step));
    const double expect = x / (1 + std::exp(-2 * std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR(gelu_tanh(float(x)), expect, 4e-7 * std::abs(expect) + 1e-9) << x;
  }
  EXPECT_EQ(gelu_tanh(-100.0f), 0.0f);
  EXPECT_EQ(gelu_tanh(100.0f), 100.0f);
  EXPECT_EQ(gelu_tanh(0.0f), 0.0f);
}

// Fast's GeLU (fast_elementwise.h) against float64, with the exact version for comparison. Rounding the
// argument z = 2y costs |z| ulp where sigmoid(z) is small, so both are held to 4 (2 + |z|) 2^-24 relative;
// results below 1e-30 (x < -9.3, where floats turn subnormal) only have to be that small.
TEST(Activations, FastGeluTanhWithinTheBoundOfTheExactOne) {
  double worst_fast = 0, worst_exact = 0;
  for (double step = -30; step <= 30; step += 0.00071) {
    const double x = double(float(step));
    const double z = 2 * std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
    const double expect = x / (1 + std::exp(-z));
    if (std::abs(expect) < 1e-30) {
      EXPECT_LE(std::abs(gelu_tanh_fast(float(x))), 1e-30) << x;
      continue;
    }
    const double ulps = std::ldexp(1.0, -24) * (2 + std::abs(z)) * std::abs(expect);
    worst_fast = std::max(worst_fast, std::abs(gelu_tanh_fast(float(x)) - expect) / ulps);
    worst_exact = std::max(worst_exact, std::abs(gelu_tanh(float(x)) - expect) / ulps);
  }
  EXPECT_LE(worst_fast, 4.0);
  EXPECT_LE(worst_exact, 4.0);
  EXPECT_EQ(gelu_tanh_fast(-100.0f), 0.0f);
  EXPECT_EQ(gelu_tanh_fast(100.0f), 100.0f);
  EXPECT_EQ(gelu_tanh_fast(0.0f), 0.0f);
  EXPECT_EQ(gelu_tanh_fast(1e30f), 1e30f);
  EXPECT_EQ(gelu_tanh_fast(INFINITY), INFINITY);
  for (double x = -87; x <= 0; x += 0.173)  // the polynomial exp: about 1 ulp
    EXPECT_NEAR(exp_nonpositive(float(x)), std::exp(double(float(x))), 2.5e-7 * std::exp(double(float(x)))) << x;
  EXPECT_EQ(exp_nonpositive(-88.0f), 0.0f);
  EXPECT_EQ(exp_nonpositive(0.0f), 1.0f);
}

// Fast's elementwise steps give the scalar reference's bits in every set: random values over the whole
// float range (subnormals, halfway cases, infinities and NaN among them), with tails of every length.
TEST(Activations, FastElementwiseGivesTheScalarBitsForEveryIsa) {
  std::mt19937 rng(5);
  std::vector<float> x;
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_real_distribution<float> moderate(-12.0f, 12.0f);
  for (int i = 0; i < 4000; ++i) {
    uint32_t bits = any_bits(rng);
    if (i % 4 == 1) bits = (bits & 0x8000ffffu) | 0x3f800000u | 0x8000u;  // exactly halfway, or just past it
    float v;
    std::memcpy(&v, &bits, 4);
    x.push_back(i % 4 == 0 ? moderate(rng) : v);
  }
  for (float special : {0.0f, -0.0f, 1e-40f, -1e-40f, INFINITY, -INFINITY, NAN, 3.4e38f, -3.4e38f})
    x.push_back(special);
  for (int64_t n : {int64_t(x.size()), int64_t(15), int64_t(7), int64_t(1)}) {
    std::vector<uint16_t> rounded(static_cast<size_t>(n));
    std::vector<float> gelu(x.begin(), x.begin() + n);
    scalar_kernels().bf16_activations(x.data(), rounded.data(), n);
    scalar_kernels().gelu_tanh_fast(gelu.data(), n);
    for (const KernelTable* k : every_isa_on_this_cpu()) {
      std::vector<uint16_t> r(static_cast<size_t>(n));
      std::vector<float> g(x.begin(), x.begin() + n);
      k->bf16_activations(x.data(), r.data(), n);
      k->gelu_tanh_fast(g.data(), n);
      EXPECT_EQ(std::memcmp(r.data(), rounded.data(), r.size() * 2), 0) << isa_name(k->isa) << " n=" << n;
      EXPECT_EQ(std::memcmp(g.data(), gelu.data(), g.size() * 4), 0) << isa_name(k->isa) << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace medlab
