// Kernels for AVX2 with FMA and F16C, the baseline of x86-64 machines from the last decade.
// Matrix multiply works on register tiles of 4 input rows x 3 weight rows (12 of the 16 ymm registers
// accumulate). As in every kernel set, an output keeps one 8-lane accumulator that walks K in order,
// then a fixed horizontal sum: its bits do not depend on the tile it was computed in, m, or threads.
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "kernels/blocked_matmul.h"  // inside the target region: its loops are compiled for this ISA

namespace medlab {
namespace {

template <DType D>
inline __m256 load8(const void* base, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    if constexpr (D == DType::F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// The last k % 8 elements, zero-padded: zero lanes add exactly nothing to the accumulators.
template <DType D>
inline __m256 load_tail(const void* base, int64_t i, int64_t n) {
  constexpr size_t elem = D == DType::F32 ? 4 : 2;
  alignas(32) uint8_t padded[8 * elem] = {};
  std::memcpy(padded, static_cast<const uint8_t*>(base) + size_t(i) * elem, size_t(n) * elem);
  return load8<D>(padded, 0);
}

inline float horizontal_sum(__m256 v) {
  const __m128 pairs = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quads = _mm_add_ps(pairs, _mm_movehl_ps(pairs, pairs));
  return _mm_cvtss_f32(_mm_add_ss(quads, _mm_movehdup_ps(quads)));
}

template <DType D, int MR, int NR>
void tile(const float* x, int64_t k, const void* w, int64_t r0, float* y, int64_t y_stride) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  constexpr size_t elem = D == DType::F32 ? 4 : 2;
  const void* wrow[NR];
  for (int j = 0; j < NR; ++j) wrow[j] = static_cast<const uint8_t*>(w) + size_t(r0 + j) * size_t(k) * elem;

  int64_t c = 0;
  for (; c + 8 <= k; c += 8) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load8<D>(wrow[j], c);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * k + c);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (c < k) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_tail<D>(wrow[j], c, k - c);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = load_tail<DType::F32>(x + i * k, c, k - c);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * y_stride + r0 + j] = horizontal_sum(acc[i][j]);
}

// Weight rows per register tile, and the L2 share a block of x rows may fill.
struct Tile {
  static constexpr int kWeightRows = 3;
  static constexpr int64_t kL2Bytes = (int64_t(1) << 19);
  template <DType D, int MR, int NR>
  static void run(const float* x, int64_t k, const void* w, int64_t r0, float* y, int64_t y_stride) {
    tile<D, MR, NR>(x, k, w, r0, y, y_stride);
  }
};

float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  if (i < n) acc = _mm256_fmadd_ps(load_tail<DType::F32>(a, i, n - i), load_tail<DType::F32>(b, i, n - i), acc);
  return horizontal_sum(acc);
}

void axpy_avx2(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

}  // namespace

#pragma GCC pop_options

const KernelTable* avx2_kernels() {
  static const KernelTable table{Isa::Avx2, &blocked::matmul_rows_any<Tile>, &dot_avx2, &axpy_avx2};
  static const bool supported = [] {
    unsigned eax, ebx, ecx, edx;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported ? &table : nullptr;
}

}  // namespace medlab
