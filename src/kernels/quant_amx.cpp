// Prefill on AMX for Q8_0 and Q4_0 (rows read in place, or Q4_0x16 panels) and Q4_K, Q5_K and Q6_K (their
// 16-row panels): 16 activation rows against 16 weight rows per tile product. A block of 32 values (or a
// K-quant's sub-block of 32 or group of 16) is one `tdpbssd` or `tdpbsud` (16 x 16 x 32 products of signed
// activations and signed weights or unsigned codes, summed exactly in int32), so its integer sums are the ones VNNI forms; they then go through
// the same integer and float steps in the same order (quant_matmul.h), and so give the same bits. Those steps
// are most of the work that is left: AMX takes over the products.
// Decode (fewer than 16 activation rows) and the other types take the AVX512-VNNI kernels.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/quant_matmul.h"
#include "kernels/x16_panels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(                                                                                    \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8"))), \
    apply_to = function)
#endif

namespace medlab {
namespace {

[[maybe_unused]] inline float half(uint16_t h) { return _cvtsh_ss(h); }  // for quant_panels.h's decode, not used here
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void prefetch_ahead(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0); }

#include "kernels/quant_panels.h"  // inside the target region and this file's namespace
#include "kernels/x16_vectors.h"

// The tile registers' shapes for products over k = 32 or 16 values: 0-3 sums, 16 activation rows x 16
// weight rows of int32; 4-5 k values of 16 activation rows; 6-7 k values of 16 weight rows as k / 4 steps of
// 4 values for the 16 rows (64 bytes), which is the layout AMX takes for its second operand.
AmxTileConfig int8_tiles(int k) { return AmxTileConfig().shape(0, 3, 16, 64).shape(4, 5, 16, k).shape(6, 7, k / 4, 64); }

constexpr int64_t kPairStep = kPanelRows + 1;  // 64-byte vectors per block of a pair of panels
using TileSums = int32_t[16][16];

// Four products into tiles 0-3, from activation tiles x_step bytes apart (their rows k bytes apart) and weight
// tiles w_step vectors apart, the operands through tiles 4-7 by turns. The weights are signed (tdpbssd) or
// unsigned codes (tdpbsud). The tile numbers are written out: GCC's intrinsics take literals.
template <bool kUnsignedWeights, int k = 32>
inline void four_products(const uint8_t* x, int64_t x_step, const __m512i* w, int64_t w_step) {
  _tile_zero(0);
  _tile_loadd(4, x, k);
  _tile_loadd(6, w, 64);
  if constexpr (kUnsignedWeights) _tile_dpbsud(0, 4, 6); else _tile_dpbssd(0, 4, 6);
  _tile_zero(1);
  _tile_loadd(5, x + x_step, k);
  _tile_loadd(7, w + w_step, 64);
  if constexpr (kUnsignedWeights) _tile_dpbsud(1, 5, 7); else _tile_dpbssd(1, 5, 7);
  _tile_zero(2);
  _tile_loadd(4, x + 2 * x_step, k);
  _tile_loadd(6, w + 2 * w_step, 64);
  if constexpr (kUnsignedWeights) _tile_dpbsud(2, 4, 6); else _tile_dpbssd(2, 4, 6);
  _tile_zero(3);
  _tile_loadd(5, x + 3 * x_step, k);
  _tile_loadd(7, w + 3 * w_step, 64);
  if constexpr (kUnsignedWeights) _tile_dpbsud(3, 5, 7); else _tile_dpbssd(3, 5, 7);
}
inline void store_four(TileSums* to) {
  _tile_stored(0, to[0], 64);
  _tile_stored(1, to[1], 64);
  _tile_stored(2, to[2], 64);
  _tile_stored(3, to[3], 64);
}

// The products of one step (4 blocks, or a super-block's 8 sub-blocks) are in flight while the float steps
// of the step before run: products(i, sums) issues step i's products into sums, finish(i, sums) adds them up.
template <int kTilesPerStep, class Products, class Finish>
inline void pipelined(int64_t steps, Products products, Finish finish) {
  alignas(64) TileSums sums[2][kTilesPerStep];
  if (steps > 0) products(0, sums[0]);
  for (int64_t i = 0; i < steps; ++i) {
    if (i + 1 < steps) products(i + 1, sums[(i + 1) % 2]);
    finish(i, sums[i % 2]);
  }
}

// Q8_0 and Q4_0 weights (the rows' blocks of 32, signed) against Q8_0 activations.
struct Q8Tiles {
  static constexpr int kRows = 16, kValues = 32;  // values per tile product
  // A tile's block b: its rows' 32 values each, then their scales.
  static constexpr size_t kBlockBytes = kRows * (32 + 4);
  static size_t tile_bytes(int64_t cols) { return size_t(cols / 32) * kBlockBytes; }
  static size_t panel_vectors(int64_t cols) { return size_t(cols / 32 * kPairStep); }

  // The tile's rows block by block, so that one tile load takes a block of all of them; rows past `rows`
  // are zero (their results are computed and not used).
  static void pack(const uint8_t* x, size_t x_row_bytes, int rows, int64_t cols, uint8_t* out) {
    const int64_t nb = cols / 32;
    std::memset(out, 0, tile_bytes(cols));
    for (int i = 0; i < rows; ++i) {
      const Q8Row row = q8_row(x + size_t(i) * x_row_bytes, cols);
      for (int64_t b = 0; b < nb; ++b) {
        std::memcpy(out + b * kBlockBytes + 32 * i, row.qs + 32 * b, 32);
        std::memcpy(out + b * kBlockBytes + 32 * kRows + 4 * i, &row.d[b], 4);
      }
    }
  }

  static void tile(const __m512i* pair, const uint8_t* packed, int64_t cols, __m512* out) {
    const int64_t nb = cols / 32;
    __m512 acc[kRows];
    for (auto& a : acc) a = _mm512_setzero_ps();
    auto add_block = [&](const TileSums& block_sums, int64_t b) {
      const auto* scales = reinterpret_cast<const float*>(packed + b * kBlockBytes + 32 * kRows);
      const __m512 w_scales = _mm512_load_ps(reinterpret_cast<const float*>(pair + b * kPairStep + kPanelRows));
      #pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i) {
        const __m512 sum = _mm512_cvtepi32_ps(_mm512_load_si512(block_sums[i]));
        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(w_scales, _mm512_set1_ps(scales[i])), sum, acc[i]);
      }
    };
    pipelined<4>(
        nb / 4,
        [&](int64_t step, TileSums* sums) {
          four_products<false>(packed + 4 * step * kBlockBytes, kBlockBytes, pair + 4 * step * kPairStep, kPairStep);
          store_four(sums);
        },
        [&](int64_t step, const TileSums* sums) {
          for (int j = 0; j < 4; ++j) add_block(sums[j], 4 * step + j);
        });
    for (int64_t b = nb / 4 * 4; b < nb; ++b) {  // the last blocks, one at a time
      alignas(64) TileSums sums;
      _tile_zero(0);
      _tile_loadd(4, packed + b * kBlockBytes, 32);
      _tile_loadd(6, pair + b * kPairStep, 64);
      _tile_dpbssd(0, 4, 6);
      _tile_stored(0, sums, 64);
      add_block(sums, b);
    }
    for (int i = 0; i < kRows; ++i) out[i] = acc[i];
  }
};

// Q4_K and Q5_K panels (Q4_Kx16, Q5_Kx16) against Q8_K activations. Per super-block the panel is laid out
// as 78 vectors: the 8 sub-blocks' codes as 8 steps each (unsigned, with Q5_K's fifth bit), the sub-blocks'
// 6-bit scales as int32 lanes, the mins as int16 pairs (sub-blocks 2t and 2t + 1), d and dmin as floats.
// Each sub-block's tile sums times the rows' scales (vpmulld) give the super-block's integer sum, and the
// mins meet the activations' sub-block sums by vpdpwssd: the integers K4Panels forms, in its float steps.
struct K4Tiles {
  static constexpr int kRows = 16, kValues = 32;
  static constexpr int64_t kScales = 64, kMins = 72, kD = 76, kDmin = 77, kVectors = 78;  // per super-block
  // A tile's super-block: its rows' 32 values per sub-block (sub-block by sub-block), their sub-block sums
  // as int16 pairs (pair t by pair t), then their scales.
  static constexpr size_t kSums = 8 * 512, kXd = kSums + 4 * 4 * kRows, kBlockBytes = kXd + 4 * kRows;
  static size_t tile_bytes(int64_t cols) { return size_t(cols / kQK) * kBlockBytes; }
  static size_t panel_vectors(int64_t cols) { return size_t(cols / kQK * kVectors); }

  static void pack(const uint8_t* x, size_t x_row_bytes, int rows, int64_t cols, uint8_t* out) {
    const int64_t nsb = cols / kQK;
    std::memset(out, 0, tile_bytes(cols));
    for (int i = 0; i < rows; ++i) {
      const auto* row = reinterpret_cast<const BlockQ8_K*>(x + size_t(i) * x_row_bytes);
      for (int64_t b = 0; b < nsb; ++b) {
        uint8_t* block = out + b * kBlockBytes;
        for (int s = 0; s < 8; ++s) std::memcpy(block + 512 * s + 32 * i, row[b].qs + 32 * s, 32);
        for (int t = 0; t < 4; ++t) {
          const int16_t pair[2] = {int16_t(row[b].bsums[4 * t] + row[b].bsums[4 * t + 1]),
                                   int16_t(row[b].bsums[4 * t + 2] + row[b].bsums[4 * t + 3])};
          std::memcpy(block + kSums + 4 * (kRows * t + i), pair, 4);
        }
        std::memcpy(block + kXd + 4 * i, &row[b].d, 4);
      }
    }
  }

  template <bool kFifthBit>
  static void repack(const uint8_t* panel, int64_t cols, __m512i* out) {
    constexpr DType kType = kFifthBit ? DType::Q5_Kx16 : DType::Q4_Kx16;
    const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
    for (int64_t b = 0; b < cols / kQK; ++b, out += kVectors) {
      const uint8_t* block = panel + size_t(b) * x16_block_bytes(kType);
      const uint8_t* low = kFifthBit ? block + kQ5KLow : block;
      for (int c = 0; c < 4; ++c) {
        #pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          const __m512i codes = _mm512_loadu_si512(low + 64 * (8 * c + q));
          __m512i even = _mm512_and_si512(codes, low4), odd = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low4);
          if constexpr (kFifthBit) {
            const __m512i high = _mm512_loadu_si512(block + 64 * q);
            even = _mm512_or_si512(even, _mm512_and_si512(shift_to_bit4(high, 2 * c), bit4));
            odd = _mm512_or_si512(odd, _mm512_and_si512(shift_to_bit4(high, 2 * c + 1), bit4));
          }
          out[8 * (2 * c) + q] = even;
          out[8 * (2 * c + 1) + q] = odd;
        }
      }
      for (int s = 0; s < 8; ++s) out[kScales + s] = rows_u8(low + kQ4KScales + 16 * s);
      for (int t = 0; t < 4; ++t)
        out[kMins + t] = _mm512_or_si512(rows_u8(low + kQ4KMins + 16 * (2 * t)),
                                         _mm512_slli_epi32(rows_u8(low + kQ4KMins + 16 * (2 * t + 1)), 16));
      out[kD] = _mm512_castps_si512(rows_f16(low + kQ4KD));
      out[kDmin] = _mm512_castps_si512(rows_f16(low + kQ4KDmin));
    }
  }

  static void tile(const __m512i* panel, const uint8_t* packed, int64_t cols, __m512* out) {
    __m512 acc[kRows];
    for (auto& a : acc) a = _mm512_setzero_ps();
    pipelined<8>(
        cols / kQK,
        [&](int64_t b, TileSums* sums) {
          const uint8_t* x = packed + b * kBlockBytes;
          const __m512i* w = panel + b * kVectors;
          four_products<true>(x, 512, w, 8);
          store_four(sums);
          four_products<true>(x + 4 * 512, 512, w + 32, 8);
          store_four(sums + 4);
        },
        [&](int64_t b, const TileSums* sums) {
          const __m512i* w = panel + b * kVectors;
          const uint8_t* x = packed + b * kBlockBytes;
          const auto* x_pairs = reinterpret_cast<const int32_t*>(x + kSums);
          const auto* x_d = reinterpret_cast<const float*>(x + kXd);
          const __m512 d = _mm512_castsi512_ps(w[kD]), dmin = _mm512_castsi512_ps(w[kDmin]);
          for (int i = 0; i < kRows; ++i) {
            __m512i sum = _mm512_mullo_epi32(_mm512_load_si512(sums[0][i]), w[kScales]);
            #pragma GCC unroll 8
            for (int s = 1; s < 8; ++s)
              sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(_mm512_load_si512(sums[s][i]), w[kScales + s]));
            __m512i mins = _mm512_setzero_si512();
            #pragma GCC unroll 4
            for (int t = 0; t < 4; ++t) mins = _mm512_dpwssd_epi32(mins, w[kMins + t], _mm512_set1_epi32(x_pairs[kRows * t + i]));
            const __m512 xd = _mm512_set1_ps(x_d[i]);
            acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(sum), acc[i]);
            acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, xd), _mm512_cvtepi32_ps(mins), acc[i]);
          }
        });
    for (int i = 0; i < kRows; ++i) out[i] = acc[i];
  }
};

// Q6_K panels (Q6_Kx16) against Q8_K activations: a product per group of 16 values, whose int8 scale is
// its own. Per super-block the panel is laid out as 81 vectors: the 16 groups' codes as 4 steps each, made
// signed (less 32), the groups' scales as int32 lanes, then d. The group sums times the scales (vpmulld) give
// the super-block's integer sum, as Q6_KPanels forms it, and the same float step.
struct Q6Tiles {
  static constexpr int kRows = 16, kValues = 16;
  static constexpr int64_t kScales = 64, kD = 80, kVectors = 81;  // per super-block
  // A tile's super-block: its rows' 16 values per group (group by group), then their scales.
  static constexpr size_t kXd = 16 * 16 * kRows, kBlockBytes = kXd + 4 * kRows;
  static size_t tile_bytes(int64_t cols) { return size_t(cols / kQK) * kBlockBytes; }
  static size_t panel_vectors(int64_t cols) { return size_t(cols / kQK * kVectors); }

  static void pack(const uint8_t* x, size_t x_row_bytes, int rows, int64_t cols, uint8_t* out) {
    std::memset(out, 0, tile_bytes(cols));
    for (int i = 0; i < rows; ++i) {
      const auto* row = reinterpret_cast<const BlockQ8_K*>(x + size_t(i) * x_row_bytes);
      for (int64_t b = 0; b < cols / kQK; ++b) {
        uint8_t* block = out + b * kBlockBytes;
        for (int g = 0; g < 16; ++g) std::memcpy(block + 16 * (kRows * g + i), row[b].qs + 16 * g, 16);
        std::memcpy(block + kXd + 4 * i, &row[b].d, 4);
      }
    }
  }

  // Step 8n + q of a block gives 4 values of groups 8n + 2k + q / 4 (k = 0..3): their step q % 4.
  static void repack(const uint8_t* panel, int64_t cols, __m512i* out) {
    const __m512i offset = _mm512_set1_epi8(32);
    for (int64_t b = 0; b < cols / kQK; ++b, out += kVectors) {
      const uint8_t* block = panel + size_t(b) * x16_block_bytes(DType::Q6_Kx16);
      for (int n = 0; n < 2; ++n) {
        #pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          __m512i v[4];
          q6_step_values(block + kQ6KStep * (8 * n + q), v);
          #pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) out[4 * (8 * n + 2 * k + q / 4) + q % 4] = _mm512_sub_epi8(v[k], offset);
        }
      }
      for (int g = 0; g < 16; ++g) out[kScales + g] = rows_s8(block + kQ6KScales + 16 * g);
      out[kD] = _mm512_castps_si512(rows_f16(block + kQ6KD));
    }
  }

  static void tile(const __m512i* panel, const uint8_t* packed, int64_t cols, __m512* out) {
    __m512 acc[kRows];
    for (auto& a : acc) a = _mm512_setzero_ps();
    pipelined<16>(
        cols / kQK,
        [&](int64_t b, TileSums* sums) {
          const uint8_t* x = packed + b * kBlockBytes;
          const __m512i* w = panel + b * kVectors;
          for (int j = 0; j < 4; ++j) {
            four_products<false, kValues>(x + j * 4 * 256, 256, w + j * 16, 4);
            store_four(sums + 4 * j);
          }
        },
        [&](int64_t b, const TileSums* sums) {
          const __m512i* w = panel + b * kVectors;
          const auto* x_d = reinterpret_cast<const float*>(packed + b * kBlockBytes + kXd);
          const __m512 d = _mm512_castsi512_ps(w[kD]);
          for (int i = 0; i < kRows; ++i) {
            __m512i sum = _mm512_mullo_epi32(_mm512_load_si512(sums[0][i]), w[kScales]);
            #pragma GCC unroll 16
            for (int g = 1; g < 16; ++g)
              sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(_mm512_load_si512(sums[g][i]), w[kScales + g]));
            acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(x_d[i])), _mm512_cvtepi32_ps(sum), acc[i]);
          }
        });
    for (int i = 0; i < kRows; ++i) out[i] = acc[i];
  }
};

// Prefill: the activation rows in blocks that stay in L2, packed in tiles of 16 (the last one padded), meet
// each 16 weight rows of the range, which repack(r, out) lays out from weight row r once per block.
template <class Tiles, class Repack>
void prefill(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
             int64_t y_stride, Repack repack) {
  constexpr int kRows = Tiles::kRows;
  constexpr int64_t kL2Bytes = int64_t(1) << 20;
  const auto* x = static_cast<const uint8_t*>(xq);
  const size_t x_row_bytes = fast_activation_row_bytes(w.dtype, w.cols), tile_bytes = Tiles::tile_bytes(w.cols);
  const int64_t x_block = std::max<int64_t>(kRows, kL2Bytes / int64_t(tile_bytes / kRows) / kRows * kRows);
  struct alignas(64) Line {  // a vector's worth (a template argument drops __m512i's alignment)
    uint8_t bytes[64];
  };
  thread_local std::vector<Line> panel_lines, result_lines;  // grow to the largest call seen, then stay
  thread_local std::vector<uint8_t> tiles;
  if (panel_lines.size() < Tiles::panel_vectors(w.cols)) panel_lines.resize(Tiles::panel_vectors(w.cols));
  if (result_lines.size() < size_t(x_block)) result_lines.resize(size_t(x_block));
  if (tiles.size() < size_t(x_block / kRows) * tile_bytes) tiles.resize(size_t(x_block / kRows) * tile_bytes);
  auto* panel = reinterpret_cast<__m512i*>(panel_lines.data());
  auto* results = reinterpret_cast<__m512*>(result_lines.data());
  static const AmxTileConfig config = int8_tiles(Tiles::kValues);
  _tile_loadconfig(&config);
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t i = i0; i < i1; i += kRows)
      Tiles::pack(x + size_t(i) * x_row_bytes, x_row_bytes, int(std::min<int64_t>(kRows, i1 - i)), w.cols,
                  tiles.data() + size_t((i - i0) / kRows) * tile_bytes);
    for (int64_t r = row_begin; r < row_end; r += kRows) {
      repack(r, panel);
      for (int64_t i = i0; i < i1; i += kRows)
        Tiles::tile(panel, tiles.data() + size_t((i - i0) / kRows) * tile_bytes, w.cols, results + (i - i0));
      const int64_t nr = std::min<int64_t>(kRows, row_end - r);
      for (int64_t i = i0; i < i1; ++i) {
        const auto* lanes = reinterpret_cast<const float*>(results + (i - i0));
        if (nr == kRows)  // a constant size, copied inline
          std::memcpy(y + i * y_stride + r, lanes, kRows * sizeof(float));
        else
          std::copy(lanes, lanes + nr, y + i * y_stride + r);
      }
    }
  }
  _tile_release();  // the thread's 8 KiB of tile state need not be saved at each switch
}

// Q8_0 and Q4_0 rows read in place: two panels of 8 rows (quant_panels.h), interleaved.
template <DType D>
void prefill_rows(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                  int64_t y_stride) {
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const size_t w_row_bytes = row_bytes(D, w.cols);
  prefill<Q8Tiles>(xq, m, w, row_begin, row_end, y, y_stride, [&](int64_t r, __m512i* out) {
    for (int p = 0; p < 2; ++p)
      repack_panel<D, true, true>(wd + size_t(r + p * kPanelRows) * w_row_bytes, w_row_bytes,
                                  int(std::clamp<int64_t>(row_end - r - p * kPanelRows, 0, kPanelRows)), w.cols / 32,
                                  reinterpret_cast<__m256i*>(out) + p, 2);
  });
}

// Q4_0x16 panels (x16_panels.h): code group t's low nibbles are values 4t to 4t + 3 of the 16 rows, its high
// nibbles values 16 + 4t on, so masks and shifts give the 8 steps; the f16 scales are widened.
void prefill_q4_0x16(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                     int64_t y_stride) {
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const size_t panel_bytes = x16_panel_bytes(DType::Q4_0x16, w.cols), block_bytes = x16_block_bytes(DType::Q4_0x16);
  prefill<Q8Tiles>(xq, m, w, row_begin, row_end, y, y_stride, [&](int64_t r, __m512i* out) {
    const uint8_t* panel = wd + size_t(r / kX16Rows) * panel_bytes;
    const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    for (int64_t b = 0; b < w.cols / 32; ++b, out += kPairStep) {
      const uint8_t* block = panel + size_t(b) * block_bytes;
      #pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const __m512i codes = _mm512_loadu_si512(block + 64 * t);
        out[t] = _mm512_sub_epi8(_mm512_and_si512(codes, low4), eight);
        out[4 + t] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(codes, 4), low4), eight);
      }
      out[kPanelRows] = _mm512_castps_si512(rows_f16(block + 4 * 64));  // the scales, after the codes
    }
  });
}

void prefill_q6_k(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                  int64_t y_stride) {
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const size_t panel_bytes = x16_panel_bytes(DType::Q6_Kx16, w.cols);
  prefill<Q6Tiles>(xq, m, w, row_begin, row_end, y, y_stride, [&](int64_t r, __m512i* out) {
    Q6Tiles::repack(wd + size_t(r / kX16Rows) * panel_bytes, w.cols, out);
  });
}

template <bool kFifthBit>
void prefill_k4(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                int64_t y_stride) {
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const size_t panel_bytes = x16_panel_bytes(w.dtype, w.cols);
  prefill<K4Tiles>(xq, m, w, row_begin, row_end, y, y_stride, [&](int64_t r, __m512i* out) {
    K4Tiles::repack<kFifthBit>(wd + size_t(r / kX16Rows) * panel_bytes, w.cols, out);
  });
}

}  // namespace

void quant_matmul_rows_amx(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                           float* y, int64_t y_stride) {
  if (m >= Q8Tiles::kRows) {
    switch (w.dtype) {
      case DType::Q8_0: return prefill_rows<DType::Q8_0>(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q4_0: return prefill_rows<DType::Q4_0>(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q4_0x16: return prefill_q4_0x16(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q4_Kx16: return prefill_k4<false>(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q5_Kx16: return prefill_k4<true>(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q6_Kx16: return prefill_q6_k(xq, m, w, row_begin, row_end, y, y_stride);
      default: break;
    }
  }
  quant_matmul_rows_avx512_vnni(xq, m, w, row_begin, row_end, y, y_stride);
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
