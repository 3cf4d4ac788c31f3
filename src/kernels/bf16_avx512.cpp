// The fast bf16 matmul on AVX512-BF16: vdpbf16ps takes 32 bf16 products of an activation row and a weight
// row into 16 lanes per instruction, in exactly bf16_matmul.h's order (its own rounding, flush and pairing).
#include <immintrin.h>

#include <algorithm>

#include "kernels/bf16_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))), apply_to = function)
#endif

namespace medlab {
namespace {

inline __m512bh load_pairs(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
inline __m512bh load_pairs(const uint16_t* p, __mmask32 mask) { return (__m512bh)_mm512_maskz_loadu_epi16(mask, p); }

// Tiles of 4 x rows by 4 weight rows (16 of the 32 zmm registers accumulate), 1 x 8 for decode.
struct PairTile {
  using Vec = __m512;
  static constexpr int kRowsX = 4, kRowsW = 4, kDecodeRows = 8;
  static constexpr int64_t kL2Bytes = int64_t(1) << 20;

  template <int MR, int NR, bool kStream>
  static void run(const uint16_t* x, const uint16_t* w, int64_t k, __m512* acc) {
    __m512 a[MR][NR];
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) a[i][j] = acc[j * MR + i];
    int64_t c = 0;
    for (; c + 32 <= k; c += 32) {
      if constexpr (kStream)  // the next tile's rows into L2: the prefetchers lose track of NR streams
        for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(w + (NR + j) * k + c), _MM_HINT_T1);
      __m512bh wv[NR];
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = load_pairs(w + j * k + c);
      #pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512bh xv = load_pairs(x + i * k + c);
        #pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) a[i][j] = _mm512_dpbf16_ps(a[i][j], xv, wv[j]);
      }
    }
    if (c < k) {
      const __mmask32 mask = __mmask32((1u << (k - c)) - 1);
      __m512bh wv[NR];
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = load_pairs(w + j * k + c, mask);
      #pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512bh xv = load_pairs(x + i * k + c, mask);
        #pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) a[i][j] = _mm512_dpbf16_ps(a[i][j], xv, wv[j]);
      }
    }
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[j * MR + i] = a[i][j];
  }

  static float sum(__m512 lanes) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(lanes),
                                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(lanes), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
  }
};

#include "kernels/bf16_pairs.h"  // inside the target region and this file's namespace

}  // namespace

void bf16_matmul_rows_avx512_bf16(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin,
                                  int64_t row_end, float* y, int64_t y_stride) {
  bf16_pair_rows<PairTile>(x, m, w, row_begin, row_end, y, y_stride);
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
