// Kernels for AVX-512 (F, BW, VL). Matrix multiply works on register tiles of 4 input rows x 4 weight rows.
//
// Each output keeps one 16-lane accumulator that walks K in order, then a fixed horizontal sum, so an
// output's bits do not depend on the tile it was computed in, on m, or on the thread split.
#include <immintrin.h>

#include <algorithm>

#include "kernels/kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma,f16c")

#include "kernels/blocked_matmul.h"  // inside the target region: its loops are compiled for this ISA

namespace medlab {
namespace {

template <DType D>
inline __m512 load16(const void* base, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  } else if constexpr (D == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType D>
inline __m512 load_tail(const void* base, int64_t i, __mmask16 mask) {
  if constexpr (D == DType::F32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(base) + i);
  } else if constexpr (D == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i));
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// y[i][r] for MR rows of x starting at x and NR weight rows starting at row r0.
template <DType D, int MR, int NR>
void tile(const float* x, int64_t k, const void* w, int64_t r0, float* y, int64_t y_stride) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const size_t elem = D == DType::F32 ? 4 : 2;
  const void* wrow[NR];
  for (int j = 0; j < NR; ++j) wrow[j] = static_cast<const uint8_t*>(w) + size_t(r0 + j) * size_t(k) * elem;

  int64_t c = 0;
  for (; c + 16 <= k; c += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load16<D>(wrow[j], c);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * k + c);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (c < k) {
    const __mmask16 mask = __mmask16((1u << (k - c)) - 1);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_tail<D>(wrow[j], c, mask);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * k + c);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * y_stride + r0 + j] = _mm512_reduce_add_ps(acc[i][j]);
}

// Weight rows per register tile, and the L2 share a block of x rows may fill.
struct Tile {
  static constexpr int kWeightRows = 4;
  static constexpr int64_t kL2Bytes = (int64_t(1) << 20);
  template <DType D, int MR, int NR>
  static void run(const float* x, int64_t k, const void* w, int64_t r0, float* y, int64_t y_stride) {
    tile<D, MR, NR>(x, k, w, r0, y, y_stride);
  }
};

float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  if (i < n) {
    const __mmask16 mask = __mmask16((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void axpy_avx512(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 mask = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask,
                          _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(mask, x + i), _mm512_maskz_loadu_ps(mask, y + i)));
  }
}

}  // namespace

#pragma GCC pop_options

const KernelTable* avx512_kernels() {
  static const KernelTable table{Isa::Avx512, &blocked::matmul_rows_any<Tile>, &dot_avx512, &axpy_avx512};
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vl");
  return supported ? &table : nullptr;
}

}  // namespace medlab
