// Quantized-weight kernels for AVX-512 CPUs with VNNI: Q8_0 and Q4_0 panels (quant_panels.h) whose block
// products take vpdpbusd, two panels per 512-bit vector in prefill and 256-bit vectors in decode, and
// Q4_0x16's 16-row panels in 512-bit vectors. They give the same bits as every other set (quant_matmul.h's
// order). The K-quants and NF4 use the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/q4_0x16.h"
#include "kernels/quant_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#endif

namespace medlab {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void prefetch_ahead(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0); }

#include "kernels/quant_panels.h"  // inside the target region and this file's namespace: compiled with VNNI

// Q4_0x16: a panel's 16 rows in the 16 int32 lanes of one 512-bit vector. Per 64-byte group, a mask and a
// shift give 4 values of every row; vpdpbusd multiplies each by a broadcast group of 4 activations. The
// panels are one stream, asked for 1 KiB ahead: decode read 12 GB/s per thread from memory without it and
// 16-19 with it (from L3, 30).
constexpr int kX16Tile = 8;
constexpr int kX16Ahead = 1024;

template <int MR>
void x16_panel(const uint8_t* panel, const Q8Row (&x)[MR], int64_t nb, float (*out)[kQ4_0x16Rows]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[MR];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* block = panel + size_t(b) * kQ4_0x16BlockBytes;
    #pragma GCC unroll 5
    for (int line = 0; line < 5; ++line)
      _mm_prefetch(reinterpret_cast<const char*>(block) + kX16Ahead + 64 * line, _MM_HINT_T0);
    __m512i sum[MR];
    for (auto& s : sum) s = _mm512_setzero_si512();
    #pragma GCC unroll 4
    for (int t = 0; t < 4; ++t) {
      const __m512i codes = _mm512_loadu_si512(block + 64 * t);
      const __m512i low = _mm512_and_si512(codes, low4), high = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low4);
      #pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t first, second;  // activations 4t..4t+3 and 16+4t..16+4t+3 of block b
        std::memcpy(&first, x[i].qs + 32 * b + 4 * t, 4);
        std::memcpy(&second, x[i].qs + 32 * b + 16 + 4 * t, 4);
        sum[i] = _mm512_dpbusd_epi32(sum[i], low, _mm512_set1_epi32(first));
        sum[i] = _mm512_dpbusd_epi32(sum[i], high, _mm512_set1_epi32(second));
      }
    }
    const __m512 w_scales = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 256)));
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i dots = _mm512_sub_epi32(sum[i], _mm512_set1_epi32(8 * x[i].sums[b]));
      acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(w_scales, _mm512_set1_ps(x[i].d[b])), _mm512_cvtepi32_ps(dots), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_store_ps(out[i], acc[i]);
}

#include "kernels/q4_0x16_rows.h"

}  // namespace

void quant_matmul_rows_avx512_vnni(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin,
                                   int64_t row_end, float* y, int64_t y_stride) {
  switch (w.dtype) {
    case DType::Q8_0: return panel_rows<DType::Q8_0, true>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0: return panel_rows<DType::Q4_0, true>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0x16: return x16_rows(xq, m, w, row_begin, row_end, y, y_stride);
    default: return quant_matmul_rows_avx2(xq, m, w, row_begin, row_end, y, y_stride);
  }
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
