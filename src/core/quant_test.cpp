// Round trips through every dtype's quantizer: error bounds, edge blocks, and the byte layouts that
// other code (kernels, GGUF, bitsandbytes import) relies on. Bit-exactness against llama.cpp itself is
// checked in tests/parity/quant_parity.cpp.
#include "core/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace medlab {
namespace {

constexpr DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                               DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K, DType::NF4};

std::vector<float> round_trip(DType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(row_bytes(type, int64_t(x.size())));
  quantize_row(type, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(type, q.data(), y.data(), int64_t(y.size()));
  return y;
}

// Gaussian values that are never exactly zero, so no block is trivially empty.
std::vector<float> random_row(int64_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) {
    do v = normal(rng);
    while (v == 0.0f);
  }
  return x;
}

// Root-mean-square error of the round trip relative to the row's RMS, the usual quality measure of
// these formats; the bounds sit a little above what each format is known to reach on Gaussian data.
double relative_rms_error(DType type) {
  switch (type) {
    case DType::F32: return 0;
    case DType::F16: return 1e-3;
    case DType::BF16: return 5e-3;
    case DType::Q8_0:
    case DType::Q8_K: return 0.01;
    case DType::Q6_K: return 0.03;
    case DType::Q5_K: return 0.06;
    case DType::Q4_K: return 0.12;
    case DType::Q4_0:
    case DType::NF4: return 0.15;
    case DType::Q4_0x16:
    case DType::Q4_Kx16:
    case DType::Q5_Kx16:
    case DType::Q6_Kx16: break;  // not row types: kernels/quant_matmul_test.cpp tests them
  }
  return 0;
}

TEST(Quant, RoundTripErrorIsWithinEachFormatsBound) {
  for (DType type : kAllTypes) {
    for (float scale : {0.02f, 1.0f, 300.0f}) {  // much smaller, the f16 block scales go subnormal
      const std::vector<float> x = random_row(4096, scale, 7);
      const std::vector<float> y = round_trip(type, x);
      double err2 = 0, sum2 = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        err2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        sum2 += double(x[i]) * x[i];
      }
      EXPECT_LE(std::sqrt(err2 / sum2), relative_rms_error(type)) << dtype_name(type) << " scale " << scale;
    }
  }
}

TEST(Quant, EveryValueStaysWithinOneStepOfItsBlockMaximum) {
  // A loose per-element bound: no value moves by more than 1/steps of its block's largest magnitude.
  const std::pair<DType, double> steps[] = {{DType::Q8_0, 120}, {DType::Q4_0, 7}, {DType::Q4_K, 7},
                                            {DType::Q5_K, 15},  {DType::Q6_K, 30}, {DType::Q8_K, 120},
                                            {DType::NF4, 3}};
  for (auto [type, n_steps] : steps) {
    const std::vector<float> x = random_row(2048, 0.5f, 11);
    const std::vector<float> y = round_trip(type, x);
    const int64_t block = block_elements(type);
    for (size_t b = 0; b < x.size(); b += size_t(block)) {
      float amax = 0;
      for (int64_t j = 0; j < block; ++j) amax = std::max(amax, std::fabs(x[b + size_t(j)]));
      for (int64_t j = 0; j < block; ++j)
        ASSERT_LE(std::fabs(y[b + size_t(j)] - x[b + size_t(j)]), amax / n_steps) << dtype_name(type) << " at " << b + size_t(j);
    }
  }
}

TEST(Quant, AllZeroBlocksStayZero) {
  for (DType type : kAllTypes) {
    const std::vector<float> y = round_trip(type, std::vector<float>(512, 0.0f));
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(type);
  }
}

TEST(Quant, OneHugeValueKeepsItselfAndItsNeighboursFinite) {
  for (DType type : kAllTypes) {
    if (type == DType::F16) continue;  // 1e4 would be fine, but the point here is block scales
    std::vector<float> x = random_row(512, 0.01f, 3);
    x[37] = 5000.0f;
    x[300] = -7000.0f;
    const std::vector<float> y = round_trip(type, x);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << dtype_name(type);
    EXPECT_NEAR(y[37], 5000.0f, 5000.0f * 0.1f) << dtype_name(type);
    EXPECT_NEAR(y[300], -7000.0f, 7000.0f * 0.02f) << dtype_name(type);  // the block's extreme is kept closely
  }
}

TEST(Quant, Q8_0LayoutIsScaleThenSignedBytes) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[size_t(i)] = float(i - 16);  // largest magnitude 16
  BlockQ8_0 b;
  quantize_row(DType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, f32_to_f16(16.0f / 127));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[31], int8_t(std::lround(15 * 127.0 / 16)));
}

TEST(Quant, Q4_0PutsTheSecondHalfInHighNibbles) {
  std::vector<float> x(32, 1.0f);
  x[0] = -8.0f;  // the extreme, so d = 1 and -8 maps to code 0
  x[16] = 3.0f;  // code 11 in the high nibble of byte 0
  BlockQ4_0 b;
  quantize_row(DType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(f16_to_f32(b.d), 1.0f);
  EXPECT_EQ(b.qs[0], uint8_t((11 << 4) | 0));
  EXPECT_EQ(b.qs[1], uint8_t((9 << 4) | 9));
}

TEST(Quant, Nf4PutsTheFirstValueInTheHighNibbleAndHitsLevelsExactly) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[size_t(i)] = 2.0f * kNf4Levels[i % 16];
  BlockNF4 b;
  quantize_row(DType::NF4, x.data(), &b, 64);
  EXPECT_EQ(b.d, 2.0f);
  EXPECT_EQ(b.qs[0], 0x01);  // levels 0 and 1
  EXPECT_EQ(b.qs[7], 0xef);
  std::vector<float> y(64);
  dequantize_row(DType::NF4, &b, y.data(), 64);
  EXPECT_EQ(y, x);
}

TEST(Quant, Q8_KBlockSumsMatchItsQuants) {
  const std::vector<float> x = random_row(256, 1.0f, 5);
  BlockQ8_K b;
  quantize_row(DType::Q8_K, x.data(), &b, 256);
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
    EXPECT_EQ(b.bsums[g], sum);
  }
}

TEST(Quant, RequantizingADequantizedRowGivesTheSameBytes) {
  // True of the formats whose scale comes from the block maximum alone (the K-quants search scales).
  for (DType type : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::NF4}) {
    const std::vector<float> x = round_trip(type, random_row(1024, 1.0f, 9));
    std::vector<uint8_t> a(row_bytes(type, 1024)), b(row_bytes(type, 1024));
    quantize_row(type, x.data(), a.data(), 1024);
    quantize_row(type, round_trip(type, x).data(), b.data(), 1024);
    EXPECT_EQ(a, b) << dtype_name(type) << ": a dequantized row must requantize to itself";
  }
}

TEST(Quant, PartialBlocksAreRejected) {
  std::vector<float> x(100);
  std::vector<uint8_t> q(1024);
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), q.data(), 100), Error);
  EXPECT_THROW(dequantize_row(DType::Q8_0, q.data(), x.data(), 33), Error);
}

TEST(Quant, ElementF32ReadsInsideBlocks) {
  const std::vector<float> x = random_row(512, 1.0f, 13);
  for (DType type : {DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::NF4}) {
    std::vector<uint8_t> q(row_bytes(type, 512));
    quantize_row(type, x.data(), q.data(), 512);
    const std::vector<float> y = round_trip(type, x);
    const TensorView view{type, {2, 256}, q.data()};
    for (int64_t i : {0, 1, 63, 64, 255, 256, 300, 511}) EXPECT_EQ(element_f32(view, i), y[size_t(i)]) << dtype_name(type);
  }
}

}  // namespace
}  // namespace medlab
