#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/quant.h"
#include "kernels/kernels.h"
#include "kernels/x16_panels.h"
#include "kernels/quant_matmul.h"

namespace medlab {
namespace {

constexpr DType kWeightTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::NF4};

std::vector<float> random_values(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(0.05f, 1.0f);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng) * (negative(rng) ? -1.0f : 1.0f);  // never zero
  return v;
}

struct QuantWeights {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // dequantize_row of the bytes
  WeightMatrix view;
};

QuantWeights random_weights(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  QuantWeights w;
  const std::vector<float> source = random_values(rows * cols, rng);
  w.bytes.resize(row_bytes(type, cols) * size_t(rows));
  w.values.resize(size_t(rows * cols));
  quantize_row(type, source.data(), w.bytes.data(), rows * cols);
  dequantize_row(type, w.bytes.data(), w.values.data(), rows * cols);
  w.view = {type, rows, cols, w.bytes.data()};
  return w;
}

// The columns a test matrix may have: whole weight blocks and whole activation blocks.
int64_t column_block(DType type) {
  return std::max(block_elements(type), block_elements(fast_activation_type(type)));
}

// The activations as Fast mode sees them: each row quantized, then widened in float64; and each value's
// scale (the bound of its rounding error).
struct FastActivations {
  std::vector<double> values, scales;
};

FastActivations fast_activations(DType weights, const std::vector<float>& x, int64_t cols) {
  const DType type = fast_activation_type(weights);
  const int64_t n = int64_t(x.size());
  std::vector<uint8_t> q(row_bytes(type, n));
  quantize_row(type, x.data(), q.data(), n);
  FastActivations a{std::vector<double>(size_t(n)), std::vector<double>(size_t(n))};
  for (int64_t b = 0; b < n / block_elements(type); ++b) {
    for (int64_t e = 0; e < block_elements(type); ++e) {
      double scale, level;
      if (type == DType::Q8_0) {
        const auto& blk = reinterpret_cast<const BlockQ8_0*>(q.data())[b];
        scale = f16_to_f32(blk.d);
        level = blk.qs[e];
      } else {
        const auto& blk = reinterpret_cast<const BlockQ8_K*>(q.data())[b];
        scale = blk.d;
        level = blk.qs[e];
      }
      const size_t i = size_t(b * block_elements(type) + e);
      a.values[i] = scale * level;
      a.scales[i] = std::abs(scale);
    }
  }
  return a;
}

// The weights as Fast mode sees them: exactly the dequantized values, except NF4, whose levels are rounded
// to multiples of 2^-14.
std::vector<double> fast_weights(const QuantWeights& w) {
  std::vector<double> v(w.values.begin(), w.values.end());
  if (w.view.dtype != DType::NF4) return v;
  const auto* blocks = reinterpret_cast<const BlockNF4*>(w.bytes.data());
  for (size_t b = 0; b < v.size() / 64; ++b) {
    for (int j = 0; j < 32; ++j) {
      v[64 * b + 2 * j] = double(blocks[b].d) * kNf4LevelsInt[blocks[b].qs[j] >> 4] / 16384.0;
      v[64 * b + 2 * j + 1] = double(blocks[b].d) * kNf4LevelsInt[blocks[b].qs[j] & 0x0F] / 16384.0;
    }
  }
  return v;
}

TEST(QuantMatmul, Nf4IntegerLevelsAreTheLevelsRounded) {
  for (int i = 0; i < 16; ++i) EXPECT_EQ(kNf4LevelsInt[i], std::lround(double(kNf4Levels[i]) * 16384)) << i;
}

// Fast's activation rows in Q8_0: every set gives the reference's bytes (codes, scales, sums), over blocks of
// ordinary values, zeros, one huge value among tiny ones, and exact halves after scaling.
TEST(QuantMatmul, QuantizeQ8RowGivesTheReferenceBytesForEveryIsa) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const int64_t cols = 32 * 40;
  std::vector<float> x(static_cast<size_t>(cols));
  for (float& v : x) v = normal(rng);
  for (int j = 0; j < 32; ++j) x[size_t(32 + j)] = 0.0f;
  x[64] = 1e6f;
  for (int j = 1; j < 32; ++j) x[size_t(64 + j)] = 1e-3f * float(j);
  for (int j = 0; j < 32; ++j) x[size_t(96 + j)] = 127.0f - 0.5f * float(j);  // scale 1: halves to round
  for (int j = 0; j < 32; ++j) x[size_t(128 + j)] = -x[size_t(96 + j)];
  std::vector<uint8_t> reference(q8_row_bytes(cols));
  quantize_q8_row(x.data(), cols, reference.data());
  for (const KernelTable* k : available_kernels()) {
    std::vector<uint8_t> out(q8_row_bytes(cols), 0xAB);
    k->quantize_q8_row(x.data(), cols, out.data());
    EXPECT_EQ(out, reference) << isa_name(k->isa);
  }
  const Q8Row row = q8_row(reference.data(), cols);
  EXPECT_EQ(row.sums[1], 0);
  EXPECT_EQ(row.qs[96 + 1], 127);  // 126.5 rounds away from 0
  EXPECT_EQ(row.qs[128 + 1], -127);
}

TEST(QuantMatmul, DequantizeGivesDequantizeRowBitsForEveryIsa) {
  std::mt19937 rng(5);
  for (const KernelTable* k : available_kernels()) {
    for (DType type : kWeightTypes) {
      const QuantWeights w = random_weights(type, 3, 512, rng);
      std::vector<float> y(w.values.size());
      k->dequantize(type, w.bytes.data(), y.data(), int64_t(y.size()));
      EXPECT_EQ(std::memcmp(y.data(), w.values.data(), y.size() * 4), 0) << isa_name(k->isa) << " " << dtype_name(type);
    }
  }
}

// Exact: the float64 dot of the dequantized weights, within f32 summation error. Fast: the float64 value of
// the same integer-block scheme within f32 rounding, and the Exact result within the activations' rounding.
TEST(QuantMatmul, BothPrecisionsMatchFloat64ForEveryIsaAndType) {
  std::mt19937 rng(7);
  ThreadPool pool(2);
  for (const KernelTable* k : available_kernels()) {
    for (DType type : kWeightTypes) {
      for (auto [m, rows, blocks] : {std::tuple{1, 37, 1}, {5, 19, 2}, {9, 33, 3}}) {
        const int64_t cols = blocks * column_block(type);
        const QuantWeights w = random_weights(type, rows, cols, rng);
        const std::vector<float> x = random_values(m * cols, rng);
        std::vector<float> exact(size_t(m * rows)), fast(size_t(m * rows));
        matmul(*k, pool, x.data(), m, w.view, exact.data(), Precision::Exact);
        matmul(*k, pool, x.data(), m, w.view, fast.data(), Precision::Fast);
        const std::vector<double> wf = fast_weights(w);
        int64_t differing = 0;  // a single output may round to the same float by chance; most must not
        for (int64_t i = 0; i < m; ++i) {
          const std::vector<float> xi(x.begin() + i * cols, x.begin() + (i + 1) * cols);
          const FastActivations xf = fast_activations(type, xi, cols);
          for (int64_t r = 0; r < rows; ++r) {
            double expect = 0, magnitude = 0, expect_fast = 0, magnitude_fast = 0, rounding = 0;
            for (int64_t c = 0; c < cols; ++c) {
              const size_t wi = size_t(r * cols + c);
              expect += double(xi[size_t(c)]) * w.values[wi];
              magnitude += std::abs(double(xi[size_t(c)]) * w.values[wi]);
              expect_fast += xf.values[size_t(c)] * wf[wi];
              magnitude_fast += std::abs(xf.values[size_t(c)] * wf[wi]);
              // Activation rounding (half a step, plus the f16 rounding of Q8_0's scale), and NF4's level rounding.
              rounding += 0.6 * xf.scales[size_t(c)] * std::abs(wf[wi]) + std::abs(double(xi[size_t(c)])) *
                                                                                std::abs(wf[wi] - w.values[wi]);
            }
            const std::string where = std::string(isa_name(k->isa)) + " " + std::string(dtype_name(type)) +
                                      " m=" + std::to_string(m) + " i=" + std::to_string(i) + " r=" + std::to_string(r);
            const float y_exact = exact[size_t(i * rows + r)], y_fast = fast[size_t(i * rows + r)];
            EXPECT_NEAR(y_exact, expect, 1e-6 * magnitude) << where;
            EXPECT_NEAR(y_fast, expect_fast, 1e-5 * magnitude_fast) << where;
            EXPECT_NEAR(y_fast, y_exact, rounding + 1e-5 * magnitude) << where;
            differing += y_fast != y_exact;
          }
        }
        EXPECT_GT(differing, m * rows * 9 / 10) << isa_name(k->isa) << " " << dtype_name(type) << " m=" << m
                                                << ": Fast should differ from Exact";
      }
    }
  }
}

// A row's result must not depend on which other rows share the call or on the thread count.
TEST(QuantMatmul, BitIdenticalAcrossBatchCompositionAndThreads) {
  std::mt19937 rng(11);
  ThreadPool one(1), two(2), three(3);
  for (const KernelTable* k : available_kernels()) {
    for (DType type : kWeightTypes) {
      for (Precision precision : {Precision::Exact, Precision::Fast}) {
        const int64_t m = 7, rows = 45, cols = 2 * column_block(type);
        const QuantWeights w = random_weights(type, rows, cols, rng);
        const std::vector<float> x = random_values(m * cols, rng);
        std::vector<float> batched(size_t(m * rows)), tail(size_t((m - 2) * rows));
        matmul(*k, two, x.data(), m, w.view, batched.data(), precision);
        matmul(*k, three, x.data() + 2 * cols, m - 2, w.view, tail.data(), precision);
        EXPECT_EQ(std::memcmp(tail.data(), batched.data() + 2 * rows, tail.size() * 4), 0)
            << isa_name(k->isa) << " " << dtype_name(type);
        for (int64_t i = 0; i < m; ++i) {
          for (ThreadPool* pool : {&one, &three}) {
            std::vector<float> alone(static_cast<size_t>(rows));
            matmul(*k, *pool, x.data() + i * cols, 1, w.view, alone.data(), precision);
            EXPECT_EQ(std::memcmp(alone.data(), batched.data() + i * rows, size_t(rows) * 4), 0)
                << isa_name(k->isa) << " " << dtype_name(type) << " row " << i;
          }
        }
      }
    }
  }
}

// Q8_0 and Q4_0 define their float summation order (quant_matmul.h): every set gives the scalar set's bits,
// in decode (m < 4) and prefill tiles (AMX's 16 activation rows, where this CPU lets the process use them,
// and the rows left over), with whole and partial panels of 8 and 16 weight rows.
TEST(QuantMatmul, Q8_0AndQ4_0GiveTheScalarBitsForEveryIsa) {
  std::mt19937 rng(13);
  ThreadPool pool(2);
  for (DType type : {DType::Q8_0, DType::Q4_0}) {
    for (auto [m, rows, blocks] : {std::tuple{1, 9, 3}, {2, 7, 8}, {3, 5, 19}, {9, 7, 19}, {6, 3, 16}, {17, 40, 5},
                                   {3, 35, 4}, {1, 40, 7}, {2, 33, 9}, {40, 37, 6}, {32, 16, 80}, {16, 50, 2},
                                   {360, 20, 80}}) {  // AMX: more rows than one block of them in L2
      const int64_t cols = 32 * blocks;
      const QuantWeights w = random_weights(type, rows, cols, rng);
      const std::vector<float> x = random_values(m * cols, rng);
      std::vector<float> reference(size_t(m * rows));
      matmul(scalar_kernels(), pool, x.data(), m, w.view, reference.data(), Precision::Fast);
      for (const KernelTable* k : available_kernels()) {
        std::vector<float> y(size_t(m * rows));
        matmul(*k, pool, x.data(), m, w.view, y.data(), Precision::Fast);
        EXPECT_EQ(std::memcmp(y.data(), reference.data(), y.size() * 4), 0)
            << isa_name(k->isa) << " " << dtype_name(type) << " m=" << m << " blocks=" << blocks;
      }
    }
  }
}

// Q4_0, Q4_K, Q5_K and Q6_K packed in 16-row panels give the bits of their row type in both precisions and every
// set (Fast: the scalar set's, whose order the panel kernels follow): decode and prefill tiles, partial
// panels, a view of fewer rows than were packed (a head cut to the tokenizer's vocabulary), any split over
// threads. Their rows come back as the blocks they were packed from.
TEST(QuantMatmul, X16PanelsGiveTheirRowTypesBitsForEveryIsaAndPrecision) {
  std::mt19937 rng(17);
  ThreadPool one(1), two(2), three(3);
  for (DType type : {DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const DType panel_type = x16_type(type);
    for (auto [m, rows, used, blocks] : {std::tuple{1, 16, 16, 3}, {1, 40, 37, 7}, {2, 33, 33, 9}, {3, 48, 45, 4},
                                         {4, 17, 17, 2}, {9, 64, 50, 5}, {17, 35, 35, 8}, {40, 50, 45, 6},
                                         {16, 20, 20, 1}}) {
      const int64_t cols = block_elements(type) * blocks;
      const QuantWeights w = random_weights(type, rows, cols, rng);
      std::vector<uint8_t> packed(x16_bytes(panel_type, rows, cols));
      const int64_t panels = (rows + kX16Rows - 1) / kX16Rows;
      pack_x16(panel_type, w.bytes.data(), rows, cols, 0, panels / 2, packed.data());  // in two parts, as loading does
      pack_x16(panel_type, w.bytes.data(), rows, cols, panels / 2, panels, packed.data());
      const size_t w_row_bytes = row_bytes(type, cols);
      std::vector<uint8_t> row(w_row_bytes);
      for (int64_t r = 0; r < rows; ++r) {
        unpack_x16_row(panel_type, packed.data(), cols, r, row.data());
        EXPECT_EQ(std::memcmp(row.data(), w.bytes.data() + size_t(r) * w_row_bytes, w_row_bytes), 0)
            << dtype_name(type) << " row " << r;
      }
      const WeightMatrix plain{type, used, cols, w.bytes.data()}, view{panel_type, used, cols, packed.data()};
      const std::vector<float> x = random_values(m * cols, rng);
      for (Precision precision : {Precision::Exact, Precision::Fast}) {
        for (const KernelTable* k : available_kernels()) {
          std::vector<float> expect(size_t(m * used));
          matmul(precision == Precision::Fast ? scalar_kernels() : *k, two, x.data(), m, plain, expect.data(), precision);
          for (ThreadPool* pool : {&one, &two, &three}) {
            std::vector<float> y(expect.size());
            matmul(*k, *pool, x.data(), m, view, y.data(), precision);
            EXPECT_EQ(std::memcmp(y.data(), expect.data(), y.size() * 4), 0)
                << isa_name(k->isa) << " " << dtype_name(panel_type) << (precision == Precision::Fast ? " fast" : " exact")
                << " m=" << m << " rows=" << used << "/" << rows << " blocks=" << blocks << " threads=" << pool->size();
          }
        }
      }
    }
  }
}

TEST(QuantMatmul, RejectsPartialBlocksAndActivationTypes) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(4096);
  std::vector<float> x(512), y(4);
  for (Precision precision : {Precision::Exact, Precision::Fast}) {
    EXPECT_THROW(matmul(best_kernels(), pool, x.data(), 1, {DType::Q4_K, 2, 128, bytes.data()}, y.data(), precision),
                 std::runtime_error);
    EXPECT_THROW(matmul(best_kernels(), pool, x.data(), 1, {DType::NF4, 2, 32, bytes.data()}, y.data(), precision),
                 std::runtime_error);
    EXPECT_THROW(matmul(best_kernels(), pool, x.data(), 1, {DType::Q8_K, 2, 256, bytes.data()}, y.data(), precision),
                 std::runtime_error);
  }
}

}  // namespace
}  // namespace medlab
