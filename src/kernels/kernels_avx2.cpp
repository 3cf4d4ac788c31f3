// Kernels for AVX2 with FMA and F16C, the baseline of x86-64 machines from the last decade.
// Matrix multiply works on register tiles of 4 input rows x 3 weight rows (12 of the 16 ymm registers
// accumulate) over weights widened to f32 once per block, or 1 x 6 straight from the stored weights when
// there are fewer than 4 input rows (decode). As in every kernel set, an output keeps one 8-lane
// accumulator that walks K in order, then a fixed horizontal sum: its bits do not depend on the tile it
// was computed in, m, or threads.
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/bf16_matmul.h"
#include "kernels/fast_elementwise.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#endif

#include "kernels/blocked_matmul.h"  // inside the target region: its loops are compiled for this ISA
#include "kernels/exp_avx2.h"

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

// acc[j * MR + i] += x[i] . w[r0 + j] over columns [c0, c1), MR rows of x by NR weight rows; the
// accumulators live in registers for the whole range. kStream: the weights come from memory, once (decode);
// the next tile's rows are asked into L2 at this tile's pace, since the hardware prefetchers lose track of
// NR streams a row apart.
template <DType D, int MR, int NR, bool kStream>
void tile(const float* x, int64_t k, const void* w, int64_t r0, int64_t c0, int64_t c1, __m256* acc) {
  __m256 a[MR][NR];
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) a[i][j] = acc[j * MR + i];
  constexpr size_t elem = D == DType::F32 ? 4 : 2;
  const void* wrow[NR];
  #pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) wrow[j] = static_cast<const uint8_t*>(w) + size_t(r0 + j) * size_t(k) * elem;

  const size_t next_tile = size_t(NR) * size_t(k) * elem;  // bytes from a row to its place in the next tile
  int64_t c = c0;
  for (; c + 8 <= c1; c += 8) {
    if constexpr (kStream)
      if (c * elem % 64 == 0)
        for (int j = 0; j < NR; ++j)
          _mm_prefetch(static_cast<const char*>(wrow[j]) + next_tile + size_t(c) * elem, _MM_HINT_T1);
    __m256 wv[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load8<D>(wrow[j], c);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * k + c);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) a[i][j] = _mm256_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
  if (c < c1) {
    __m256 wv[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load_tail<D>(wrow[j], c, c1 - c);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = load_tail<DType::F32>(x + i * k, c, c1 - c);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) a[i][j] = _mm256_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[j * MR + i] = a[i][j];
}

// Tile sizes for 16 ymm registers: 4x3 (12 accumulators) for prefill, 1x6 for decode; the cache shares
// assume half a MiB of L2 per core and a few MiB of L3.
struct Tile {
  using Vec = __m256;
  static constexpr int kWeightRows = 3, kDecodeRows = 6;
  static constexpr int64_t kL2Bytes = int64_t(1) << 19, kL3Bytes = int64_t(1) << 22;
  template <DType D, int MR, int NR, bool kStream>
  static void run(const float* x, int64_t k, const void* w, int64_t r0, int64_t c0, int64_t c1, __m256* acc) {
    tile<D, MR, NR, kStream>(x, k, w, r0, c0, c1, acc);
  }
  template <DType D>
  static void widen(const void* w, int64_t first, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8<D>(w, first + i));
    for (; i < n; ++i) out[i] = _mm256_cvtss_f32(load_tail<D>(w, first + i, 1));
  }
  static float sum(__m256 acc) { return horizontal_sum(acc); }
};

// The fast bf16 order (bf16_matmul.h) without AVX512-BF16: a 32-bit word holds a pair of bf16 values, the
// even one low, so shifting it left by 16 gives the even value as f32 and masking the low half gives the odd
// one. Two FMAs per word, odd first, with MXCSR's flush rules, are vdpbf16ps's steps.
struct PairLanes {
  __m256 lo, hi;  // lanes 0-7 and 8-15
};

struct PairTile {
  using Vec = PairLanes;
  static constexpr int kRowsX = 2, kRowsW = 2, kDecodeRows = 4;
  static constexpr int64_t kL2Bytes = int64_t(1) << 19;

  // 8 pairs of `p` (words 0-7 or 8-15 of a chunk) as their even and odd values.
  static void split(const uint16_t* p, __m256& even, __m256& odd) {
    const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    even = _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
    odd = _mm256_castsi256_ps(_mm256_and_si256(words, _mm256_set1_epi32(int(0xffff0000u))));
  }

  // One chunk of 32 columns: rows of x and w start at x[i] and w[j].
  template <int MR, int NR>
  static void chunk(const uint16_t* const (&x)[MR], const uint16_t* const (&w)[NR], __m256 (&a)[MR][NR][2]) {
    #pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m256 xe[MR], xo[MR];
      #pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) split(x[i] + 16 * h, xe[i], xo[i]);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        __m256 we, wo;
        split(w[j] + 16 * h, we, wo);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) a[i][j][h] = _mm256_fmadd_ps(xe[i], we, _mm256_fmadd_ps(xo[i], wo, a[i][j][h]));
      }
    }
  }

  template <int MR, int NR, bool kStream>
  static void run(const uint16_t* x, const uint16_t* w, int64_t k, PairLanes* acc) {
    __m256 a[MR][NR][2];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) a[i][j][0] = acc[j * MR + i].lo, a[i][j][1] = acc[j * MR + i].hi;
    int64_t c = 0;
    for (; c + 32 <= k; c += 32) {
      if constexpr (kStream)  // the next tile's rows into L2: the prefetchers lose track of NR streams
        for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(w + (NR + j) * k + c), _MM_HINT_T1);
      const uint16_t* xs[MR];
      const uint16_t* ws[NR];
      for (int i = 0; i < MR; ++i) xs[i] = x + i * k + c;
      for (int j = 0; j < NR; ++j) ws[j] = w + j * k + c;
      chunk<MR, NR>(xs, ws, a);
    }
    if (c < k) {  // the last chunk, zero-padded
      alignas(32) uint16_t xt[MR][32] = {}, wt[NR][32] = {};
      const uint16_t* xs[MR];
      const uint16_t* ws[NR];
      for (int i = 0; i < MR; ++i) {
        std::memcpy(xt[i], x + i * k + c, size_t(k - c) * 2);
        xs[i] = xt[i];
      }
      for (int j = 0; j < NR; ++j) {
        std::memcpy(wt[j], w + j * k + c, size_t(k - c) * 2);
        ws[j] = wt[j];
      }
      chunk<MR, NR>(xs, ws, a);
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[j * MR + i] = {a[i][j][0], a[i][j][1]};
  }

  // bf16_matmul.h's lane sum: the two halves, then horizontal_sum's own tree (+4, +2, +1).
  static float sum(PairLanes lanes) { return horizontal_sum(_mm256_add_ps(lanes.lo, lanes.hi)); }
};

#include "kernels/bf16_pairs.h"  // inside the target region and this file's namespace

// bf16_activation of 8 floats, as 32-bit lanes.
inline __m256i bf16_activation_bits(__m256 v) {
  const __m256i bits = _mm256_castps_si256(v), high = _mm256_srli_epi32(bits, 16);
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i subnormal = _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7f800000)),
                                               _mm256_setzero_si256());
  const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(high, _mm256_set1_epi32(1)));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
  const __m256i signed_zero = _mm256_and_si256(high, _mm256_set1_epi32(0x8000));
  const __m256i quiet_nan = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(_mm256_blendv_epi8(rounded, signed_zero, subnormal), quiet_nan, nan);
}

}  // namespace

void bf16_activations_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i packed = _mm256_packus_epi32(bf16_activation_bits(_mm256_loadu_ps(x + i)),
                                               bf16_activation_bits(_mm256_loadu_ps(x + i + 8)));
    // packus interleaves the two inputs' 128-bit halves; put them back in order
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm256_permute4x64_epi64(packed, 0xd8));
  }
  bf16_activations_scalar(x + i, y + i, n - i);
}

void gelu_tanh_fast_avx2(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), v);
    const __m256 z = _mm256_mul_ps(_mm256_set1_ps(1.5957691216057308f), _mm256_fmadd_ps(c, v, v));
    const __m256 e = exp_nonpositive(_mm256_or_ps(z, _mm256_set1_ps(-0.0f)));  // e^-|z|
    const __m256 positive = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ);
    const __m256 numerator = _mm256_blendv_ps(_mm256_mul_ps(v, e), v, positive);
    _mm256_storeu_ps(x + i, _mm256_div_ps(numerator, _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
  }
  gelu_tanh_fast_scalar(x + i, n - i);
}

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options

void bf16_matmul_rows_avx2(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                           float* y, int64_t y_stride) {
  bf16_pair_rows<PairTile>(x, m, w, row_begin, row_end, y, y_stride);
}

const KernelTable* avx2_kernels() {
  static const KernelTable table{Isa::Avx2, &blocked::matmul_rows_any<Tile>, &dequantize_row_avx2,
                                 &quant_matmul_rows_avx2, &quantize_q8_row_avx2, &bf16_matmul_rows_avx2,
                                 &bf16_activations_avx2, &gelu_tanh_fast_avx2};
  static const bool supported = [] {
    unsigned eax, ebx, ecx, edx;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported ? &table : nullptr;
}

}  // namespace medlab
