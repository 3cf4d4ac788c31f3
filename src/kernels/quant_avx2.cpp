// Quantized-weight kernels for AVX2 (also used by the AVX-512 set: the int8 work here is not what
// limits a 4-bit matmul, and AVX-512 code could not be tested on the machines this was written on).
//
// Fast, K-quants and NF4: register tiles of 4 activation rows x 2 weight rows; each weight block is unpacked
// once (to KQuantLevels in L1, or to int16 levels in registers) and meets the tile's activation rows;
// maddubs/madd give 8 int32 lanes, each block adds d_w * d_x * lanes into an 8-lane float accumulator, and a
// fixed horizontal sum ends each output.
// Fast, Q8_0 and Q4_0: panels of 8 weight rows whose block dot products fill the 8 lanes of one vector
// (quant_matmul.h's order). Decode reads the panel in place; prefill first repacks it so that each vector
// holds 4 values of all 8 rows, and an activation's 4 values, broadcast, meet them in one maddubs.
// Fast, 16-row panels (Q4_0x16, Q4_Kx16, Q5_Kx16, Q6_Kx16): the 16 rows of a panel in two halves of 8 lanes, read
// as they lie.
// Either way an output's bits depend only on its activation row and weight row.
// Exact: dequantize_row_avx2 gives dequantize_row's bits (this file is built with -ffp-contract=off).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/x16_panels.h"
#include "kernels/quant_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#endif

namespace medlab {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

inline float horizontal_sum(__m256 v) {
  const __m128 pairs = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quads = _mm_add_ps(pairs, _mm_movehl_ps(pairs, pairs));
  return _mm_cvtss_f32(_mm_add_ss(quads, _mm_movehdup_ps(quads)));
}

// A register tile's MR x NR accumulators: cleared before the blocks, then each ends in one fixed horizontal sum.
template <int MR, int NR>
inline void zero_tile(__m256 (&acc)[MR][NR]) {
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
}
template <int MR, int NR>
inline void store_tile_sums(const __m256 (&acc)[MR][NR], float* y, int64_t y_stride) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * y_stride + j] = horizontal_sum(acc[i][j]);
}

// Weight rows stream from memory once per call: ask for them a little ahead of their use.
inline void prefetch_ahead(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void store256(void* p, __m256i v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
inline __m256 int8x8_to_float(const void* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))));
}
inline __m256 uint8x8_to_float(const void* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))));
}

#include "kernels/quant_panels.h"  // inside the target region and this file's namespace: compiled for AVX2

// ---- Fast: 16-row panels (x16_panels.h) ----

// A panel's 16 rows in two passes of 8 (a 256-bit half of each 64-byte group), so that a tile of 4 activation
// rows keeps its sums and accumulators in registers; the second pass reads the panel from L2. Products by
// maddubs, added in int16 as far as they cannot overflow (Q4_0: a block, 16 * 15 * 128 < 2^15; Q4_K: a
// sub-block of 32, 16 * 15 * 128; Q5_K: half of one, 8 * 31 * 128; Q6_K: 4 products, 4 * 63 * 128), then
// widened by madd.
inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
// 8 bytes or f16 values, one per row, widened to the rows' lanes.
inline __m256i rows_u8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256i rows_s8(const uint8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256 rows_f16(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

struct Q4_0Panels {
  static constexpr int kTile = 4;
  template <int MR>
  static void panel(const uint8_t* panel, const uint8_t* const (&xr)[MR], int64_t cols, float (*out)[kX16Rows]) {
    Q8Row x[MR];
    for (int i = 0; i < MR; ++i) x[i] = q8_row(xr[i], cols);
    const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {
      __m256 acc[MR];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int64_t b = 0; b < cols / 32; ++b) {
        const uint8_t* block = panel + size_t(b) * x16_block_bytes(DType::Q4_0x16);
        __m256i sum[MR];
        for (auto& s : sum) s = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {
          const __m256i codes = load256(block + 64 * t + 32 * h);
          const __m256i low = _mm256_and_si256(codes, low4), high = _mm256_and_si256(_mm256_srli_epi16(codes, 4), low4);
          #pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {  // activations 4t..4t+3 and 16+4t..16+4t+3 of block b
            sum[i] = _mm256_add_epi16(sum[i], _mm256_maddubs_epi16(low, broadcast4(x[i].qs + 32 * b + 4 * t)));
            sum[i] = _mm256_add_epi16(sum[i], _mm256_maddubs_epi16(high, broadcast4(x[i].qs + 32 * b + 16 + 4 * t)));
          }
        }
        const __m256 w_scales = rows_f16(block + 256 + 16 * h);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const __m256i dots = _mm256_sub_epi32(_mm256_madd_epi16(sum[i], ones), _mm256_set1_epi32(8 * x[i].sums[b]));
          acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(w_scales, _mm256_set1_ps(x[i].d[b])), _mm256_cvtepi32_ps(dots), acc[i]);
        }
      }
      for (int i = 0; i < MR; ++i) _mm256_store_ps(out[i] + 8 * h, acc[i]);
    }
  }
};

// The K-quant panels as the AVX-512 kernels compute them (quant_avx512.cpp), 8 rows at a time.
template <bool kFifthBit>
struct K4Panels {
  static constexpr int kTile = 4;
  static constexpr DType kType = kFifthBit ? DType::Q5_Kx16 : DType::Q4_Kx16;
  static constexpr int kInt16Groups = kFifthBit ? 4 : 8;  // 4-value groups whose products int16 lanes can hold
  template <int MR>
  static void panel(const uint8_t* panel, const uint8_t* const (&xr)[MR], int64_t cols, float (*out)[kX16Rows]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {
      __m256 acc[MR];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int64_t b = 0; b < cols / kQK; ++b) {
        const uint8_t* block = panel + size_t(b) * x16_block_bytes(kType);
        const uint8_t* low = kFifthBit ? block + kQ5KLow : block;  // Q4_Kx16's layout
        const BlockQ8_K* x[MR];
        for (int i = 0; i < MR; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xr[i]) + b;
        __m256i sum[MR], sum_mins[MR];
        for (int i = 0; i < MR; ++i) sum[i] = sum_mins[i] = _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {  // sub-block s: chunk s / 2, low nibbles when s is even
          const int c = s / 2;
          __m256i dots[MR];
          for (auto& d : dots) d = _mm256_setzero_si256();
          #pragma GCC unroll 2
          for (int q0 = 0; q0 < 8; q0 += kInt16Groups) {
            __m256i products[MR];
            for (auto& p : products) p = _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int q = q0; q < q0 + kInt16Groups; ++q) {
              const __m256i codes = load256(low + 64 * (8 * c + q) + 32 * h);
              __m256i v = _mm256_and_si256(s % 2 ? _mm256_srli_epi16(codes, 4) : codes, low4);
              if constexpr (kFifthBit) {
                const __m256i high = load256(block + 64 * q + 32 * h);
                const __m256i at4 = s < 4 ? _mm256_sll_epi16(high, _mm_cvtsi32_si128(4 - s))
                                          : _mm256_srl_epi16(high, _mm_cvtsi32_si128(s - 4));
                v = _mm256_or_si256(v, _mm256_and_si256(at4, bit4));
              }
              #pragma GCC unroll 4
              for (int i = 0; i < MR; ++i)
                products[i] =
                    _mm256_add_epi16(products[i], _mm256_maddubs_epi16(v, broadcast4(x[i]->qs + 32 * s + 4 * q)));
            }
            for (int i = 0; i < MR; ++i) dots[i] = _mm256_add_epi32(dots[i], _mm256_madd_epi16(products[i], ones));
          }
          const __m256i scale = rows_u8(low + kQ4KScales + 16 * s + 8 * h);
          const __m256i min = rows_u8(low + kQ4KMins + 16 * s + 8 * h);
          #pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            sum[i] = _mm256_add_epi32(sum[i], _mm256_mullo_epi32(dots[i], scale));
            const int32_t x_sum = x[i]->bsums[2 * s] + x[i]->bsums[2 * s + 1];
            sum_mins[i] = _mm256_add_epi32(sum_mins[i], _mm256_mullo_epi32(min, _mm256_set1_epi32(x_sum)));
          }
        }
        const __m256 d = rows_f16(low + kQ4KD + 16 * h), dmin = rows_f16(low + kQ4KDmin + 16 * h);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const __m256 x_d = _mm256_set1_ps(x[i]->d);
          acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(d, x_d), _mm256_cvtepi32_ps(sum[i]), acc[i]);
          acc[i] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, x_d), _mm256_cvtepi32_ps(sum_mins[i]), acc[i]);
        }
      }
      for (int i = 0; i < MR; ++i) _mm256_store_ps(out[i] + 8 * h, acc[i]);
    }
  }
};

struct Q6_KPanels {
  static constexpr int kTile = 4;
  template <int MR>
  static void panel(const uint8_t* panel, const uint8_t* const (&xr)[MR], int64_t cols, float (*out)[kX16Rows]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30), ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {
      __m256 acc[MR];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int64_t b = 0; b < cols / kQK; ++b) {
        const uint8_t* block = panel + size_t(b) * x16_block_bytes(DType::Q6_Kx16);
        const BlockQ8_K* x[MR];
        for (int i = 0; i < MR; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xr[i]) + b;
        __m256i sum[MR];
        for (auto& s : sum) s = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int part = 0; part < 4; ++part) {  // groups g = 8n + 2k + part % 2 (k = 0..3)
          const int n = part / 2;
          __m256i dots[MR][4];
          for (auto& row : dots)
            for (auto& d : row) d = _mm256_setzero_si256();
          #pragma GCC unroll 2
          for (int pair = 0; pair < 2; ++pair) {
            __m256i products[MR][4];
            for (auto& row : products)
              for (auto& p : row) p = _mm256_setzero_si256();
            #pragma GCC unroll 2
            for (int q = 4 * (part % 2) + 2 * pair; q < 4 * (part % 2) + 2 * pair + 2; ++q) {
              const uint8_t* step = block + kQ6KStep * (8 * n + q) + 32 * h;
              const __m256i first = load256(step), second = load256(step + 64), high = load256(step + 128);
              const __m256i v[4] = {
                  _mm256_or_si256(_mm256_and_si256(first, low4), _mm256_and_si256(_mm256_slli_epi16(high, 4), bits45)),
                  _mm256_or_si256(_mm256_and_si256(second, low4), _mm256_and_si256(_mm256_slli_epi16(high, 2), bits45)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(first, 4), low4), _mm256_and_si256(high, bits45)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(second, 4), low4),
                                  _mm256_and_si256(_mm256_srli_epi16(high, 2), bits45))};
              #pragma GCC unroll 4
              for (int k = 0; k < 4; ++k)
                #pragma GCC unroll 4
                for (int i = 0; i < MR; ++i)
                  products[i][k] = _mm256_add_epi16(
                      products[i][k], _mm256_maddubs_epi16(v[k], broadcast4(x[i]->qs + 128 * n + 32 * k + 4 * q)));
            }
            for (int i = 0; i < MR; ++i)
              for (int k = 0; k < 4; ++k) dots[i][k] = _mm256_add_epi32(dots[i][k], _mm256_madd_epi16(products[i][k], ones));
          }
          #pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) {
            const int g = 8 * n + 2 * k + part % 2;
            const __m256i scale = rows_s8(block + kQ6KScales + 16 * g + 8 * h);
            #pragma GCC unroll 4
            for (int i = 0; i < MR; ++i) {
              const __m256i centred = _mm256_sub_epi32(dots[i][k], _mm256_set1_epi32(32 * x[i]->bsums[g]));
              sum[i] = _mm256_add_epi32(sum[i], _mm256_mullo_epi32(centred, scale));
            }
          }
        }
        const __m256 d = rows_f16(block + kQ6KD + 16 * h);
        #pragma GCC unroll 4
        for (int i = 0; i < MR; ++i)
          acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[i]->d)), _mm256_cvtepi32_ps(sum[i]), acc[i]);
      }
      for (int i = 0; i < MR; ++i) _mm256_store_ps(out[i] + 8 * h, acc[i]);
    }
  }
};

#include "kernels/x16_rows.h"

// ---- K-quant super-blocks to KQuantLevels ----

inline void store_k4_scales(const uint8_t packed[12], KQuantLevels& out) {
  const K4Scales k4 = unpack_k4_scales(packed);
  const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(k4.scales))));
  #pragma GCC unroll 8
  for (int s = 0; s < 8; ++s)  // int16 lane s everywhere: bytes 2s, 2s + 1
    store256(out.scales[s], _mm256_shuffle_epi8(scales, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * s))));
  const __m128i m = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(k4.mins)));
  store256(out.mins, _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m)));
}

inline void levels(const BlockQ4_K& b, KQuantLevels& out) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  #pragma GCC unroll 8
  for (int c = 0; c < 4; ++c) {
    const __m256i v = load256(b.qs + 32 * c);
    store256(out.q + 64 * c, _mm256_and_si256(v, low4));
    store256(out.q + 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
  }
  store_k4_scales(b.scales, out);
  out.d = half(b.d);
  out.dmin = half(b.dmin);
}

inline void levels(const BlockQ5_K& b, KQuantLevels& out) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  const __m256i qh = load256(b.qh);
  #pragma GCC unroll 8
  for (int c = 0; c < 4; ++c) {
    const __m256i v = load256(b.qs + 32 * c);
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
    store256(out.q + 64 * c, _mm256_or_si256(_mm256_and_si256(v, low4), h0));
    store256(out.q + 64 * c + 32, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), h1));
  }
  store_k4_scales(b.scales, out);
  out.d = half(b.d);
  out.dmin = half(b.dmin);
}

inline void levels(const BlockQ6_K& b, KQuantLevels& out) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(3);
  #pragma GCC unroll 8
  for (int n = 0; n < 2; ++n) {
    const __m256i ql0 = load256(b.ql + 64 * n), ql1 = load256(b.ql + 64 * n + 32), qh = load256(b.qh + 32 * n);
    auto high = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), low2), 4); };
    uint8_t* q = out.q + 128 * n;
    store256(q, _mm256_or_si256(_mm256_and_si256(ql0, low4), high(0)));
    store256(q + 32, _mm256_or_si256(_mm256_and_si256(ql1, low4), high(2)));
    store256(q + 64, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), high(4)));
    store256(q + 96, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), high(6)));
  }
  const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  const __m256i first8 = _mm256_permute2x128_si256(scales, scales, 0x00);
  const __m256i last8 = _mm256_permute2x128_si256(scales, scales, 0x11);
  #pragma GCC unroll 8
  for (int s = 0; s < 8; ++s) {  // lanes 0-7: int16 2s, lanes 8-15: int16 2s + 1
    const int g = (2 * s) % 8;
    const __m256i pick = _mm256_set_m128i(_mm_set1_epi16(int16_t(0x0100 + 0x0202 * (g + 1))),
                                          _mm_set1_epi16(int16_t(0x0100 + 0x0202 * g)));
    store256(out.scales[s], _mm256_shuffle_epi8(s < 4 ? first8 : last8, pick));
  }
  store256(out.mins, _mm256_slli_epi16(scales, 5));  // the offset of 32, times each group's scale
  out.d = out.dmin = half(b.d);
}

// ---- Exact: dequantize ----

template <class Block>
void dequantize_k(const Block* x, float* y, int64_t nb) {
  KQuantLevels lv;
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    levels(x[b], lv);
    for (int g = 0; g < 16; ++g) {
      __m256 scale, offset;
      if constexpr (std::is_same_v<Block, BlockQ6_K>) {
        scale = _mm256_set1_ps(lv.d * float(lv.scales[g / 2][8 * (g % 2)]));
        offset = _mm256_set1_ps(32.0f);  // (q - 32) is exact in float, as the reference's int subtraction
      } else {
        scale = _mm256_set1_ps(lv.d * float(lv.scales[g / 2][0]));
        offset = _mm256_set1_ps(lv.dmin * float(lv.mins[g]));
      }
      for (int e = 16 * g; e < 16 * g + 16; e += 8) {
        const __m256 q = uint8x8_to_float(lv.q + e);
        const __m256 v = std::is_same_v<Block, BlockQ6_K> ? _mm256_mul_ps(scale, _mm256_sub_ps(q, offset))
                                                          : _mm256_sub_ps(_mm256_mul_ps(scale, q), offset);
        _mm256_storeu_ps(y + e, v);
      }
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += 32) {
    const __m256 d = _mm256_set1_ps(half(x[b].d));
    for (int e = 0; e < 32; e += 8) _mm256_storeu_ps(y + e, _mm256_mul_ps(int8x8_to_float(x[b].qs + e), d));
  }
}

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += 32) {
    const __m256 d = _mm256_set1_ps(half(x[b].d));
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs));
    const __m128i low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    alignas(16) int8_t v[32];
    _mm_store_si128(reinterpret_cast<__m128i*>(v), _mm_sub_epi8(_mm_and_si128(q, low4), eight));
    _mm_store_si128(reinterpret_cast<__m128i*>(v + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low4), eight));
    for (int e = 0; e < 32; e += 8) _mm256_storeu_ps(y + e, _mm256_mul_ps(int8x8_to_float(v + e), d));
  }
}

// The 32 4-bit codes of 16 NF4 bytes in value order (each byte: even value high, odd value low).
inline void nf4_codes_in_order(const uint8_t* bytes, __m128i& first16, __m128i& last16) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)), low4 = _mm_set1_epi8(0x0F);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low4), lo = _mm_and_si128(v, low4);
  first16 = _mm_unpacklo_epi8(hi, lo);
  last16 = _mm_unpackhi_epi8(hi, lo);
}

void dequantize_nf4(const BlockNF4* x, float* y, int64_t nb) {
  const __m256 levels_low = _mm256_loadu_ps(kNf4Levels), levels_high = _mm256_loadu_ps(kNf4Levels + 8);
  const __m256i seven = _mm256_set1_epi32(7);
  for (int64_t b = 0; b < nb; ++b, y += 64) {
    const __m256 d = _mm256_set1_ps(x[b].d);
    alignas(16) uint8_t codes[64];
    for (int h = 0; h < 2; ++h)
      nf4_codes_in_order(x[b].qs + 16 * h, *reinterpret_cast<__m128i*>(codes + 32 * h),
                         *reinterpret_cast<__m128i*>(codes + 32 * h + 16));
    for (int e = 0; e < 64; e += 8) {
      const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + e)));
      const __m256 upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, seven));
      const __m256 level = _mm256_blendv_ps(_mm256_permutevar8x32_ps(levels_low, idx),
                                            _mm256_permutevar8x32_ps(levels_high, idx), upper);
      _mm256_storeu_ps(y + e, _mm256_mul_ps(level, d));
    }
  }
}

// ---- Fast: NF4 against Q8_0 activations, 32 values (half a block) at a time ----

// The int16 levels of 32 values: a = values 0-7|16-23, b = values 8-15|24-31, the lane order
// unpacklo/hi_epi8 give the activations too.
struct Nf4Levels {
  __m256i a, b;
  float d;
};

inline Nf4Levels nf4_levels(const BlockNF4& blk, int half_index) {
  __m128i first16, last16;
  nf4_codes_in_order(blk.qs + 16 * half_index, first16, last16);
  const __m256i codes = _mm256_set_m128i(last16, first16);
  alignas(16) static constexpr int8_t kLow[16] = {
      int8_t(kNf4LevelsInt[0]),  int8_t(kNf4LevelsInt[1]),  int8_t(kNf4LevelsInt[2]),  int8_t(kNf4LevelsInt[3]),
      int8_t(kNf4LevelsInt[4]),  int8_t(kNf4LevelsInt[5]),  int8_t(kNf4LevelsInt[6]),  int8_t(kNf4LevelsInt[7]),
      int8_t(kNf4LevelsInt[8]),  int8_t(kNf4LevelsInt[9]),  int8_t(kNf4LevelsInt[10]), int8_t(kNf4LevelsInt[11]),
      int8_t(kNf4LevelsInt[12]), int8_t(kNf4LevelsInt[13]), int8_t(kNf4LevelsInt[14]), int8_t(kNf4LevelsInt[15])};
  alignas(16) static constexpr int8_t kHigh[16] = {
      int8_t(kNf4LevelsInt[0] >> 8),  int8_t(kNf4LevelsInt[1] >> 8),  int8_t(kNf4LevelsInt[2] >> 8),
      int8_t(kNf4LevelsInt[3] >> 8),  int8_t(kNf4LevelsInt[4] >> 8),  int8_t(kNf4LevelsInt[5] >> 8),
      int8_t(kNf4LevelsInt[6] >> 8),  int8_t(kNf4LevelsInt[7] >> 8),  int8_t(kNf4LevelsInt[8] >> 8),
      int8_t(kNf4LevelsInt[9] >> 8),  int8_t(kNf4LevelsInt[10] >> 8), int8_t(kNf4LevelsInt[11] >> 8),
      int8_t(kNf4LevelsInt[12] >> 8), int8_t(kNf4LevelsInt[13] >> 8), int8_t(kNf4LevelsInt[14] >> 8),
      int8_t(kNf4LevelsInt[15] >> 8)};
  const __m256i table_low = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kLow)));
  const __m256i table_high = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kHigh)));
  const __m256i low = _mm256_shuffle_epi8(table_low, codes), high = _mm256_shuffle_epi8(table_high, codes);
  return {_mm256_unpacklo_epi8(low, high), _mm256_unpackhi_epi8(low, high), blk.d * (1.0f / float(1 << kNf4LevelBits))};
}

// 8 int32 partial sums of 32 products of levels and activations.
inline __m256i nf4_dot(const Nf4Levels& w, const int8_t* x) {
  const __m256i q = load256(x), sign = _mm256_cmpgt_epi8(_mm256_setzero_si256(), q);
  return _mm256_add_epi32(_mm256_madd_epi16(w.a, _mm256_unpacklo_epi8(q, sign)),
                          _mm256_madd_epi16(w.b, _mm256_unpackhi_epi8(q, sign)));
}

// A register tile of MR activation rows x NR weight rows; each half block adds d_w * d_x * lanes into an
// 8-lane float accumulator.
template <int MR, int NR>
void tile_nf4(const uint8_t* xq, size_t x_row_bytes, const uint8_t* w, size_t w_row_bytes, int64_t cols, float* y,
              int64_t y_stride) {
  Q8Row x[MR];
  for (int i = 0; i < MR; ++i) x[i] = q8_row(xq + i * x_row_bytes, cols);
  __m256 acc[MR][NR];
  zero_tile(acc);
  #pragma GCC unroll 2  // the loop overhead, over two halves
  for (int64_t b = 0; b < cols / 32; ++b) {
    Nf4Levels wv[NR];
    __m256 w_scale[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const auto& blk = reinterpret_cast<const BlockNF4*>(w + j * w_row_bytes)[b / 2];
      prefetch_ahead(reinterpret_cast<const uint8_t*>(&blk));
      wv[j] = nf4_levels(blk, int(b % 2));
      w_scale[j] = _mm256_set1_ps(wv[j].d);
    }
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 x_scale = _mm256_set1_ps(x[i].d[b]);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(w_scale[j], x_scale),
                                    _mm256_cvtepi32_ps(nf4_dot(wv[j], x[i].qs + 32 * b)), acc[i][j]);
    }
  }
  store_tile_sums(acc, y, y_stride);
}

// ---- Fast: K-quant super-blocks against Q8_K activations ----

template <DType D>
using KBlock =
    std::conditional_t<D == DType::Q4_K, BlockQ4_K, std::conditional_t<D == DType::Q5_K, BlockQ5_K, BlockQ6_K>>;

template <DType D, int MR, int NR>
void tile_k(const uint8_t* xq, size_t x_row_bytes, const uint8_t* w, size_t w_row_bytes, int64_t nb, float* y,
            int64_t y_stride) {
  __m256 acc[MR][NR];
  zero_tile(acc);
  KQuantLevels lv[NR];
  for (int64_t b = 0; b < nb; ++b) {
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      for (size_t line = 0; line < block_bytes(D); line += 64)
        prefetch_ahead(w + j * w_row_bytes + b * block_bytes(D) + line);
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) levels(reinterpret_cast<const KBlock<D>*>(w + j * w_row_bytes)[b], lv[j]);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const BlockQ8_K& xb = reinterpret_cast<const BlockQ8_K*>(xq + i * x_row_bytes)[b];
      __m256i xv[8];
      #pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) xv[s] = load256(xb.qs + 32 * s);
      const __m256i bsums = load256(xb.bsums);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        __m256i sum = _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
          const __m256i pairs = _mm256_maddubs_epi16(load256(lv[j].q + 32 * s), xv[s]);
          sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, load256(lv[j].scales[s])));
        }
        const __m256i sum_mins = _mm256_madd_epi16(load256(lv[j].mins), bsums);
        acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(lv[j].d * xb.d), _mm256_cvtepi32_ps(sum), acc[i][j]);
        acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(-lv[j].dmin * xb.d), _mm256_cvtepi32_ps(sum_mins), acc[i][j]);
      }
    }
  }
  store_tile_sums(acc, y, y_stride);
}

// ---- Fast: the loops around the tiles ----

constexpr int kRowsX = 4, kRowsW = 2;

template <DType D, int MR, int NR>
void tile(const uint8_t* xq, size_t x_row_bytes, const uint8_t* w, size_t w_row_bytes, int64_t cols, float* y,
          int64_t y_stride) {
  if constexpr (D == DType::NF4)
    tile_nf4<MR, NR>(xq, x_row_bytes, w, w_row_bytes, cols, y, y_stride);
  else
    tile_k<D, MR, NR>(xq, x_row_bytes, w, w_row_bytes, cols / kQK, y, y_stride);
}

template <DType D, int MR>
void tile_any_width(const uint8_t* xq, size_t x_row_bytes, const uint8_t* w, size_t w_row_bytes, int64_t cols,
                    int nr, float* y, int64_t y_stride) {
  if (nr == kRowsW) return tile<D, MR, kRowsW>(xq, x_row_bytes, w, w_row_bytes, cols, y, y_stride);
  tile<D, MR, 1>(xq, x_row_bytes, w, w_row_bytes, cols, y, y_stride);
}

// Activation rows in blocks that stay in L2 while weight rows stream past.
template <DType D>
void rows(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
          int64_t y_stride) {
  constexpr int64_t kL2Bytes = int64_t(1) << 18;
  const size_t w_row_bytes = row_bytes(D, w.cols), x_row_bytes = fast_activation_row_bytes(D, w.cols);
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const int64_t x_block = std::max<int64_t>(kRowsX, kL2Bytes / int64_t(x_row_bytes) / kRowsX * kRowsX);
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t r = row_begin; r < row_end; r += kRowsW) {
      const int nr = int(std::min<int64_t>(kRowsW, row_end - r));
      const uint8_t* wr = wd + size_t(r) * w_row_bytes;
      int64_t i = i0;
      for (; i + kRowsX <= i1; i += kRowsX)
        tile_any_width<D, kRowsX>(x + size_t(i) * x_row_bytes, x_row_bytes, wr, w_row_bytes, w.cols, nr,
                                  y + i * y_stride + r, y_stride);
      for (; i < i1; ++i)
        tile_any_width<D, 1>(x + size_t(i) * x_row_bytes, x_row_bytes, wr, w_row_bytes, w.cols, nr,
                             y + i * y_stride + r, y_stride);
    }
  }
}

}  // namespace

void dequantize_row_avx2(DType type, const void* row, float* y, int64_t n) {
  const int64_t nb = n / block_elements(type);
  switch (type) {
    case DType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(row), y, nb);
    case DType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(row), y, nb);
    case DType::NF4: return dequantize_nf4(static_cast<const BlockNF4*>(row), y, nb);
    case DType::Q4_K: return dequantize_k(static_cast<const BlockQ4_K*>(row), y, nb);
    case DType::Q5_K: return dequantize_k(static_cast<const BlockQ5_K*>(row), y, nb);
    case DType::Q6_K: return dequantize_k(static_cast<const BlockQ6_K*>(row), y, nb);
    default: return dequantize_row(type, row, y, n);
  }
}

void quantize_q8_row_avx2(const float* x, int64_t cols, uint8_t* out) {
  std::memset(out, 0, q8_row_bytes(cols));
  const Q8Row row = q8_row(out, cols);
  auto* d = const_cast<float*>(row.d);
  auto* sums = const_cast<int32_t*>(row.sums);
  for (int64_t b = 0; b < cols / 32; ++b) {
    __m256 v[4], largest = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 32 * b + 8 * k);
      largest = _mm256_max_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[k]), largest);  // a NaN is passed over
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(largest), _mm256_extractf128_ps(largest, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    const float scale = amax / 127;
    const float inverse = scale != 0 ? 1.0f / scale : 0.0f;
    d[b] = f16_to_f32(f32_to_f16(scale));
    // quantize_q8_0's rounding: the truncation, then one step away from 0 when the rest is a half or more
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 scaled = _mm256_mul_ps(v[k], _mm256_set1_ps(inverse));
      const __m256i truncated = _mm256_cvttps_epi32(scaled);
      const __m256 rest = _mm256_sub_ps(scaled, _mm256_cvtepi32_ps(truncated));
      const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(rest, _mm256_set1_ps(0.5f), _CMP_GE_OQ));
      const __m256i down = _mm256_castps_si256(_mm256_cmp_ps(rest, _mm256_set1_ps(-0.5f), _CMP_LE_OQ));
      q[k] = _mm256_add_epi32(_mm256_sub_epi32(truncated, up), down);  // the masks are -1
    }
    const __m256i total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    const __m128i half_sum = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
    const __m128i quarter_sum = _mm_add_epi32(half_sum, _mm_shuffle_epi32(half_sum, 0x4E));
    sums[b] = _mm_cvtsi128_si32(_mm_add_epi32(quarter_sum, _mm_shuffle_epi32(quarter_sum, 0xB1)));
    // packs works per 128-bit lane: dword j < 4 of the packed bytes holds q[j]'s values 0-3, dword 4 + j its 4-7
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * b),
                        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
}

void quant_matmul_rows_avx2(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                            float* y, int64_t y_stride) {
  switch (w.dtype) {
    case DType::Q8_0: return panel_rows<DType::Q8_0, false>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0: return panel_rows<DType::Q4_0, false>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0x16: return x16_rows<Q4_0Panels>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_Kx16: return x16_rows<K4Panels<false>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q5_Kx16: return x16_rows<K4Panels<true>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q6_Kx16: return x16_rows<Q6_KPanels>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::NF4: return rows<DType::NF4>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_K: return rows<DType::Q4_K>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q5_K: return rows<DType::Q5_K>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q6_K: return rows<DType::Q6_K>(xq, m, w, row_begin, row_end, y, y_stride);
    default: return;  // plain and Q8_K weights never reach here (quant_matmul rejects them)
  }
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
