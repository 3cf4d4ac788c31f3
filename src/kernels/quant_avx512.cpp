// Quantized-weight kernels for AVX-512 CPUs with VNNI: Q8_0 and Q4_0 panels (quant_panels.h) whose block
// products take vpdpbusd, two panels per 512-bit vector in prefill and 256-bit vectors in decode, and the
// 16-row panels of Q4_0x16 and the K-quants' in 512-bit vectors. They give the same bits as every other
// set (quant_matmul.h's order). The K-quants read in place and NF4 use the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/x16_panels.h"
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

// The 16-row panels (x16_panels.h): a panel's 16 rows in the 16 int32 lanes of one 512-bit vector. Per
// 64-byte group, a mask and a shift give 4 values of every row; vpdpbusd multiplies each by a broadcast group
// of 4 activations. The panels are one stream, asked into L2 8 KiB ahead: a Q4_K_M model's decode ran 14 %
// faster than at 2 KiB into L1 (alternating runs, 2 threads), and Q4_0x16 read 12 GB/s per thread from
// memory with no prefetch at all, 16-19 at 1 KiB.
constexpr size_t kX16Ahead = 8192;

// Lines [first, first + count) of what lies kX16Ahead past `block`, into L2: each kernel spreads its block's lines
// over its steps, so no loop of prefetches (and no mispredicted exit from it) sits between them.
template <int count>
inline void prefetch_lines(const uint8_t* block, int first) {
  #pragma GCC unroll 8
  for (int line = first; line < first + count; ++line)
    _mm_prefetch(reinterpret_cast<const char*>(block) + kX16Ahead + 64 * line, _MM_HINT_T1);
}
inline __m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
inline __m512i load512(const uint8_t* p) { return _mm512_loadu_si512(p); }
#include "kernels/x16_vectors.h"

struct Q4_0Panels {
  static constexpr int kTile = 8;
  template <int MR>
  static void panel(const uint8_t* panel, const uint8_t* const (&xr)[MR], int64_t cols, float (*out)[kX16Rows]) {
    Q8Row x[MR];
    for (int i = 0; i < MR; ++i) x[i] = q8_row(xr[i], cols);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[MR];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int64_t b = 0; b < cols / 32; ++b) {
      const uint8_t* block = panel + size_t(b) * x16_block_bytes(DType::Q4_0x16);
      prefetch_lines<5>(block, 0);
      __m512i sum[MR];  // from minus the codes' offset of 8 times the activations' sum: exact at the end
      for (int i = 0; i < MR; ++i) sum[i] = _mm512_set1_epi32(-8 * x[i].sums[b]);
      #pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const __m512i codes = load512(block + 64 * t);
        const __m512i low = _mm512_and_si512(codes, low4), high = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low4);
        #pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {  // activations 4t..4t+3 and 16+4t..16+4t+3 of block b
          sum[i] = _mm512_dpbusd_epi32(sum[i], low, broadcast4(x[i].qs + 32 * b + 4 * t));
          sum[i] = _mm512_dpbusd_epi32(sum[i], high, broadcast4(x[i].qs + 32 * b + 16 + 4 * t));
        }
      }
      const __m512 w_scales = rows_f16(block + 256);
      #pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(w_scales, _mm512_set1_ps(x[i].d[b])), _mm512_cvtepi32_ps(sum[i]), acc[i]);
    }
    for (int i = 0; i < MR; ++i) _mm512_store_ps(out[i], acc[i]);
  }
};

// Sub-block s's integer dot products times the rows' 6-bit scales into sum, and its mins times the activations'
// sub-block sums into sum_mins (Q4_Kx16's layout at `low`).
template <int MR>
inline void add_scaled(const uint8_t* low, int s, const __m512i (&dots)[MR], const BlockQ8_K* const (&x)[MR],
                       __m512i (&sum)[MR], __m512i (&sum_mins)[MR]) {
  const __m512i scale = rows_u8(low + kQ4KScales + 16 * s), min = rows_u8(low + kQ4KMins + 16 * s);
  for (int i = 0; i < MR; ++i) {
    sum[i] = _mm512_add_epi32(sum[i], _mm512_mullo_epi32(dots[i], scale));
    const int32_t x_sum = x[i]->bsums[2 * s] + x[i]->bsums[2 * s + 1];
    sum_mins[i] = _mm512_add_epi32(sum_mins[i], _mm512_mullo_epi32(min, _mm512_set1_epi32(x_sum)));
  }
}

// Q4_Kx16 and Q5_Kx16 (kFifthBit): each sub-block of 32 is summed in int32 lanes over its 8 groups, then
// multiplied by the rows' 6-bit scales (vpmulld) into the super-block's sum; the mins meet the activations'
// sub-block sums likewise. Q5_K's fifth bits, bit s of a byte for sub-block s, are shifted to bit 4.
template <bool kFifthBit>
struct K4Panels {
  static constexpr int kTile = 4;
  static constexpr DType kType = kFifthBit ? DType::Q5_Kx16 : DType::Q4_Kx16;
  static constexpr int kLinesPerStep = kFifthBit ? 6 : 5;  // 8 steps: 48 lines for 45, 40 for 37
  template <int MR>
  static void panel(const uint8_t* panel, const uint8_t* const (&xr)[MR], int64_t cols, float (*out)[kX16Rows]) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
    __m512 acc[MR];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int64_t b = 0; b < cols / kQK; ++b) {
      const uint8_t* block = panel + size_t(b) * x16_block_bytes(kType);
      const uint8_t* low = kFifthBit ? block + kQ5KLow : block;  // Q4_Kx16's layout
      const BlockQ8_K* x[MR];
      for (int i = 0; i < MR; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xr[i]) + b;
      __m512i sum[MR], sum_mins[MR];
      for (int i = 0; i < MR; ++i) sum[i] = sum_mins[i] = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c) {  // chunk c: sub-block 2c in the low nibbles, 2c + 1 in the high
        prefetch_lines<2 * kLinesPerStep>(block, 2 * kLinesPerStep * c);
        __m512i even[MR], odd[MR];
        for (int i = 0; i < MR; ++i) even[i] = odd[i] = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          const __m512i codes = load512(low + 64 * (8 * c + q));
          __m512i v_even = _mm512_and_si512(codes, low4), v_odd = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low4);
          if constexpr (kFifthBit) {  // bit s of a byte for sub-block s, to bit 4
            const __m512i high = load512(block + 64 * q);
            v_even = _mm512_or_si512(v_even, _mm512_and_si512(shift_to_bit4(high, 2 * c), bit4));
            v_odd = _mm512_or_si512(v_odd, _mm512_and_si512(shift_to_bit4(high, 2 * c + 1), bit4));
          }
          #pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            even[i] = _mm512_dpbusd_epi32(even[i], v_even, broadcast4(x[i]->qs + 64 * c + 4 * q));
            odd[i] = _mm512_dpbusd_epi32(odd[i], v_odd, broadcast4(x[i]->qs + 64 * c + 32 + 4 * q));
          }
        }
        add_scaled<MR>(low, 2 * c, even, x, sum, sum_mins);
        add_scaled<MR>(low, 2 * c + 1, odd, x, sum, sum_mins);
      }
      const __m512 d = rows_f16(low + kQ4KD), dmin = rows_f16(low + kQ4KDmin);
      #pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m512 x_d = _mm512_set1_ps(x[i]->d);
        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, x_d), _mm512_cvtepi32_ps(sum[i]), acc[i]);
        acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, x_d), _mm512_cvtepi32_ps(sum_mins[i]), acc[i]);
      }
    }
    for (int i = 0; i < MR; ++i) _mm512_store_ps(out[i], acc[i]);
  }
};

// Q6_Kx16: a value is 4 bits of ql and 2 of qh; each step's three groups give 4 values of 4 value groups,
// each summed in int32 lanes from minus 32 times the activations' group sum, times the rows' int8 scales,
// into the super-block's sum.
struct Q6_KPanels {
  static constexpr int kTile = 4;
  template <int MR>
  static void panel(const uint8_t* panel, const uint8_t* const (&xr)[MR], int64_t cols, float (*out)[kX16Rows]) {
    __m512 acc[MR];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int64_t b = 0; b < cols / kQK; ++b) {
      const uint8_t* block = panel + size_t(b) * x16_block_bytes(DType::Q6_Kx16);
      const BlockQ8_K* x[MR];
      for (int i = 0; i < MR; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xr[i]) + b;
      __m512i sum[MR];
      for (auto& s : sum) s = _mm512_setzero_si512();
      prefetch_lines<5>(block, 48);  // the scales and d
      #pragma GCC unroll 4
      for (int part = 0; part < 4; ++part) {  // groups g = 8n + 2k + h (k = 0..3): values 128n + 32k + 16h..
        const int n = part / 2, h = part % 2;
        __m512i dots[MR][4];  // group g's from minus 32 times its activation sum: centred at the end
        for (int i = 0; i < MR; ++i)
          for (int k = 0; k < 4; ++k) dots[i][k] = _mm512_set1_epi32(-32 * x[i]->bsums[8 * n + 2 * k + h]);
        #pragma GCC unroll 4
        for (int q = 4 * h; q < 4 * h + 4; ++q) {
          const uint8_t* step = block + kQ6KStep * (8 * n + q);
          prefetch_lines<3>(step, 0);
          __m512i v[4];
          q6_step_values(step, v);
          #pragma GCC unroll 4
          for (int k = 0; k < 4; ++k)
            #pragma GCC unroll 4
            for (int i = 0; i < MR; ++i)
              dots[i][k] = _mm512_dpbusd_epi32(dots[i][k], v[k], broadcast4(x[i]->qs + 128 * n + 32 * k + 4 * q));
        }
        #pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          const int g = 8 * n + 2 * k + h;
          const __m512i scale = rows_s8(block + kQ6KScales + 16 * g);
          #pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) sum[i] = _mm512_add_epi32(sum[i], _mm512_mullo_epi32(dots[i][k], scale));
        }
      }
      const __m512 d = rows_f16(block + kQ6KD);
      #pragma GCC unroll 4
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(x[i]->d)), _mm512_cvtepi32_ps(sum[i]), acc[i]);
    }
    for (int i = 0; i < MR; ++i) _mm512_store_ps(out[i], acc[i]);
  }
};

#include "kernels/x16_rows.h"

}  // namespace

void quant_matmul_rows_avx512_vnni(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin,
                                   int64_t row_end, float* y, int64_t y_stride) {
  switch (w.dtype) {
    case DType::Q8_0: return panel_rows<DType::Q8_0, true>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0: return panel_rows<DType::Q4_0, true>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0x16: return x16_rows<Q4_0Panels>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_Kx16: return x16_rows<K4Panels<false>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q5_Kx16: return x16_rows<K4Panels<true>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q6_Kx16: return x16_rows<Q6_KPanels>(xq, m, w, row_begin, row_end, y, y_stride);
    default: return quant_matmul_rows_avx2(xq, m, w, row_begin, row_end, y, y_stride);
  }
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
