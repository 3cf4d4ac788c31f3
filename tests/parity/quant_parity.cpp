// medlab's block quantizers against llama.cpp's own: the reference quantizers (quantize_row_*_ref,
// what llama-quantize runs without an importance matrix) and dequantizers exported by the
// @fugood/llama.node addon, loaded with dlopen as llama_reference does. Every row must give identical
// bytes, and every block (also random, adversarial ones) identical floats.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/quant.h"
#include "formats/gguf_writer.h"

namespace medlab {
namespace {

using QuantizeFn = void (*)(const float*, void*, int64_t);
using DequantizeFn = void (*)(const void*, float*, int64_t);

struct LlamaType {
  DType type;
  const char* suffix;  // ggml's name in the exported symbols
};
constexpr LlamaType kTypes[] = {{DType::Q8_0, "q8_0"}, {DType::Q4_0, "q4_0"}, {DType::Q4_K, "q4_K"},
                                {DType::Q5_K, "q5_K"}, {DType::Q6_K, "q6_K"}, {DType::Q8_K, "q8_K"}};

void* addon() {
  static void* lib = dlopen(LLAMA_NODE_ADDON, RTLD_LAZY | RTLD_LOCAL);
  return lib;
}

template <class Fn>
Fn symbol(const std::string& name) {
  void* lib = addon();
  if (!lib) return nullptr;
  return reinterpret_cast<Fn>(dlsym(lib, name.c_str()));
}

// Rows that exercise the scale searches: Gaussian at many magnitudes, heavy tails, one outlier per
// block, one-signed blocks, constant blocks, integer ties, values near f16's subnormal range, and
// blocks that are all zero. No value is zero except in the all-zero blocks.
std::vector<std::vector<float>> test_rows(int64_t n) {
  std::mt19937 rng(20261122);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto nonzero = [](float v) { return v == 0.0f ? 1e-7f : v; };
  std::vector<std::vector<float>> rows;
  auto row = [&](auto value) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = value(i);
    rows.push_back(std::move(x));
  };
  for (float scale : {1e-3f, 0.01f, 0.02f, 0.1f, 1.0f, 17.0f, 1000.0f})
    for (int k = 0; k < 6; ++k) row([&](int64_t) { return nonzero(scale * normal(rng)); });
  for (int k = 0; k < 6; ++k) row([&](int64_t) { return nonzero(uniform(rng)); });
  for (int k = 0; k < 6; ++k) row([&](int64_t) { return nonzero(0.05f * normal(rng) / (std::fabs(uniform(rng)) + 0.01f)); });
  for (int k = 0; k < 6; ++k)
    row([&](int64_t i) { return i % 97 == 5 ? 300.0f * (k % 2 ? 1 : -1) : nonzero(0.01f * normal(rng)); });
  row([&](int64_t) { return std::fabs(nonzero(normal(rng))); });
  row([&](int64_t) { return -std::fabs(nonzero(normal(rng))) - 3.0f; });
  row([&](int64_t i) { return 0.25f + float(i / 32 % 4); });                      // constant blocks
  row([&](int64_t i) { return float(int(i * 7 % 31) - 15); });                     // small integers, many ties
  row([&](int64_t i) { return float(int(i * 13 % 17) - 8) * 0.5f; });
  row([&](int64_t) { return nonzero(3e-6f * normal(rng)); });                      // f16 scales go subnormal
  row([&](int64_t i) { return i / 256 % 2 ? 0.0f : nonzero(normal(rng)); });       // every other super-block zero
  row([&](int64_t i) { return i % 32 == 0 ? 1.0f : 1e-30f; });                     // one value per block, the rest negligible
  return rows;
}

TEST(QuantParity, BytesAndValuesEqualLlamaCpp) {
  ASSERT_NE(addon(), nullptr) << dlerror();
  const int64_t n = 4096;
  for (const LlamaType& t : kTypes) {
    const auto quantize = symbol<QuantizeFn>(std::string("quantize_row_") + t.suffix + "_ref");
    const auto dequantize = symbol<DequantizeFn>(std::string("dequantize_row_") + t.suffix);
    ASSERT_NE(quantize, nullptr) << t.suffix;
    ASSERT_NE(dequantize, nullptr) << t.suffix;
    int row_index = 0;
    for (const std::vector<float>& x : test_rows(n)) {
      std::vector<uint8_t> ours(row_bytes(t.type, n)), theirs(row_bytes(t.type, n), 0);
      quantize_row(t.type, x.data(), ours.data(), n);
      quantize(x.data(), theirs.data(), n);
      ASSERT_EQ(ours, theirs) << t.suffix << ": row " << row_index;
      std::vector<float> ours_f(static_cast<size_t>(n)), theirs_f(static_cast<size_t>(n));
      dequantize_row(t.type, ours.data(), ours_f.data(), n);
      dequantize(theirs.data(), theirs_f.data(), n);
      ASSERT_EQ(std::memcmp(ours_f.data(), theirs_f.data(), ours_f.size() * 4), 0) << t.suffix << ": row " << row_index;
      ++row_index;
    }
  }
}

// Q5_0 and Q5_1 exist in medlab only as llama-quantize's fallbacks in GGUF export.
TEST(QuantParity, GgufFallbackTypesEqualLlamaCpp) {
  ASSERT_NE(addon(), nullptr) << dlerror();
  const int64_t n = 4096;
  for (auto [type, suffix] : {std::pair{GgufType::Q5_0, "q5_0"}, std::pair{GgufType::Q5_1, "q5_1"}}) {
    const auto quantize = symbol<QuantizeFn>(std::string("quantize_row_") + suffix + "_ref");
    ASSERT_NE(quantize, nullptr) << suffix;
    int row_index = 0;
    for (const std::vector<float>& x : test_rows(n)) {
      std::vector<uint8_t> ours(size_t(n / 32) * gguf_block_bytes(type)), theirs(ours.size());
      gguf_encode_row(type, x.data(), n, ours.data());
      quantize(x.data(), theirs.data(), n);
      ASSERT_EQ(ours, theirs) << suffix << ": row " << row_index++;
    }
  }
}

TEST(QuantParity, RandomBlocksDequantizeIdentically) {
  ASSERT_NE(addon(), nullptr) << dlerror();
  std::mt19937 rng(7);
  for (const LlamaType& t : kTypes) {
    const auto dequantize = symbol<DequantizeFn>(std::string("dequantize_row_") + t.suffix);
    ASSERT_NE(dequantize, nullptr) << t.suffix;
    const int64_t n = 256 * 64;
    std::vector<uint8_t> blocks(row_bytes(t.type, n));
    for (uint8_t& b : blocks) b = uint8_t(rng());
    // Every f16 scale finite (a random 16-bit pattern may be inf/NaN, which compare unequal to themselves).
    const size_t bb = block_bytes(t.type);
    for (size_t off = 0; off < blocks.size(); off += bb) {
      auto finite_half = [&](size_t at) { blocks[off + at + 1] &= 0x7b; };  // exponent below 31
      switch (t.type) {
        case DType::Q8_0:
        case DType::Q4_0: finite_half(0); break;
        case DType::Q4_K:
        case DType::Q5_K: finite_half(0), finite_half(2); break;
        case DType::Q6_K: finite_half(208); break;
        case DType::Q8_K: {
          const float d = std::ldexp(float(rng() % 1000) / 1000.0f, -int(rng() % 20));
          std::memcpy(&blocks[off], &d, 4);
          break;
        }
        default: break;
      }
    }
    std::vector<float> ours(static_cast<size_t>(n)), theirs(static_cast<size_t>(n));
    dequantize_row(t.type, blocks.data(), ours.data(), n);
    dequantize(blocks.data(), theirs.data(), n);
    ASSERT_EQ(std::memcmp(ours.data(), theirs.data(), ours.size() * 4), 0) << t.suffix;
  }
}

}  // namespace
}  // namespace medlab
