// medlab's Precision::Fast matmul against llama.cpp's own block dot products (ggml_vec_dot_*, exported by
// the @fugood/llama.node addon and loaded with dlopen as llama_reference does). Both quantize the
// activation row with the same reference quantizer and sum the same integer block products, so they may
// differ only by float rounding in the order the block sums are added.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/quant.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"

namespace medlab {
namespace {

// ggml_vec_dot_<type>_<activation type>(n, &result, bs, weights, bx, activations, by, nrc)
using VecDotFn = void (*)(int, float*, size_t, const void*, size_t, const void*, size_t, int);

void* addon() {
  static void* lib = [] {
    void* handle = dlopen(LLAMA_NODE_ADDON, RTLD_LAZY | RTLD_LOCAL);
    if (handle) {
      if (auto init = reinterpret_cast<void (*)()>(dlsym(handle, "ggml_cpu_init"))) init();  // its f16 tables
    }
    return handle;
  }();
  return lib;
}

TEST(QuantDotParity, FastMatmulMatchesLlamaCppVecDot) {
  if (!addon()) GTEST_SKIP() << LLAMA_NODE_ADDON << " does not load: " << dlerror();
  const std::pair<DType, const char*> types[] = {{DType::Q8_0, "ggml_vec_dot_q8_0_q8_0"},
                                                 {DType::Q4_0, "ggml_vec_dot_q4_0_q8_0"},
                                                 {DType::Q4_K, "ggml_vec_dot_q4_K_q8_K"},
                                                 {DType::Q5_K, "ggml_vec_dot_q5_K_q8_K"},
                                                 {DType::Q6_K, "ggml_vec_dot_q6_K_q8_K"}};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  ThreadPool pool(2);
  const int64_t rows = 5, cols = 2560;
  for (auto [type, name] : types) {
    const auto vec_dot = reinterpret_cast<VecDotFn>(dlsym(addon(), name));
    ASSERT_NE(vec_dot, nullptr) << name;
    std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(cols));
    for (auto& v : w) v = normal(rng);
    for (auto& v : x) v = normal(rng);
    std::vector<uint8_t> wq(row_bytes(type, cols) * rows), xq(row_bytes(fast_activation_type(type), cols));
    quantize_row(type, w.data(), wq.data(), rows * cols);
    quantize_row(fast_activation_type(type), x.data(), xq.data(), cols);
    std::vector<float> y(static_cast<size_t>(rows));
    for (const KernelTable* k : available_kernels()) {
      matmul(*k, pool, x.data(), 1, {type, rows, cols, wq.data()}, y.data(), Precision::Fast);
      for (int64_t r = 0; r < rows; ++r) {
        float expect = 0;
        vec_dot(int(cols), &expect, 0, wq.data() + size_t(r) * row_bytes(type, cols), 0, xq.data(), 0, 1);
        double magnitude = 0;
        for (int64_t c = 0; c < cols; ++c) magnitude += std::abs(double(w[size_t(r * cols + c)]) * x[size_t(c)]);
        EXPECT_NEAR(y[size_t(r)], expect, 1e-5 * magnitude) << name << " " << isa_name(k->isa) << " row " << r;
      }
    }
  }
}

}  // namespace
}  // namespace medlab
