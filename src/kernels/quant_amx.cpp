// Q8_0 and Q4_0 prefill on AMX (rows read in place, or Q4_0x16 panels): 16 activation rows against 16
// weight rows per tile product. A block of 32 values is one `tdpbssd` (16 x 16 x 32 products of signed
// activations and signed weights, Q4_0's codes less 8, summed exactly in int32), so its integer sums are the
// ones VNNI forms; they then go through the same float steps in the same order (quant_matmul.h), and so give
// the same bits. Those float steps are most of the work that is left: AMX takes over the integer products.
// Decode (fewer than 16 activation rows) and the other types take the AVX512-VNNI kernels.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

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

inline float half(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void prefetch_ahead(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0); }

#include "kernels/quant_panels.h"  // inside the target region and this file's namespace

// The tile registers' shapes (palette 1): 0-3 the sums of four blocks, 16 activation rows x 16 weight rows of
// int32; 4-5 a block of 16 activation rows (16 x 32 bytes); 6-7 a block of the pair of panels, its 8 steps of
// 4 values for 16 rows (8 x 64 bytes), which is the layout AMX takes for its second operand.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {64, 64, 64, 64, 32, 32, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 8, 8};
};

constexpr int64_t kPairStep = kPanelRows + 1;  // 64-byte vectors per block of a pair of panels
constexpr int kGroup = 4;                      // blocks whose products are in flight together
using TileSums = int32_t[16][16];

struct AmxTiles {
  static constexpr int kRows = 16;
  // A tile's block b: its rows' 32 values each, then their scales.
  static constexpr size_t kBytesPerRowBlock = 32 + 4, kBlockBytes = kRows * kBytesPerRowBlock;

  // The tile's rows block by block, so that one tile load takes a block of all of them; rows past `rows`
  // are zero (their results are computed and not used).
  static void pack(const uint8_t* x, size_t x_row_bytes, int rows, int64_t cols, uint8_t* out) {
    const int64_t nb = cols / 32;
    std::memset(out, 0, size_t(nb) * kBlockBytes);
    for (int i = 0; i < rows; ++i) {
      const Q8Row row = q8_row(x + size_t(i) * x_row_bytes, cols);
      for (int64_t b = 0; b < nb; ++b) {
        std::memcpy(out + b * kBlockBytes + 32 * i, row.qs + 32 * b, 32);
        std::memcpy(out + b * kBlockBytes + 32 * kRows + 4 * i, &row.d[b], 4);
      }
    }
  }

  // The products of a group of blocks are in flight while the float steps of the group before run.
  static void tile(const __m512i* pair, const uint8_t* packed, int64_t nb, __m512* out) {
    alignas(64) TileSums sums[2][kGroup];
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
    // Blocks b to b + 3 into tiles 0-3, their operands through tiles 4-7 by turns. The tile numbers are
    // written out: GCC's intrinsics take literals.
    auto group_products = [&](int64_t b) {
      const uint8_t* x = packed + b * kBlockBytes;
      const __m512i* w = pair + b * kPairStep;
      _tile_zero(0);
      _tile_loadd(4, x, 32);
      _tile_loadd(6, w, 64);
      _tile_dpbssd(0, 4, 6);
      _tile_zero(1);
      _tile_loadd(5, x + kBlockBytes, 32);
      _tile_loadd(7, w + kPairStep, 64);
      _tile_dpbssd(1, 5, 7);
      _tile_zero(2);
      _tile_loadd(4, x + 2 * kBlockBytes, 32);
      _tile_loadd(6, w + 2 * kPairStep, 64);
      _tile_dpbssd(2, 4, 6);
      _tile_zero(3);
      _tile_loadd(5, x + 3 * kBlockBytes, 32);
      _tile_loadd(7, w + 3 * kPairStep, 64);
      _tile_dpbssd(3, 5, 7);
    };
    auto store_group = [](TileSums* to) {
      _tile_stored(0, to[0], 64);
      _tile_stored(1, to[1], 64);
      _tile_stored(2, to[2], 64);
      _tile_stored(3, to[3], 64);
    };
    const int64_t groups = nb / kGroup;
    if (groups > 0) {
      group_products(0);
      store_group(sums[0]);
    }
    for (int64_t g = 0; g < groups; ++g) {
      if (g + 1 < groups) {
        group_products(kGroup * (g + 1));
        store_group(sums[(g + 1) % 2]);
      }
      for (int j = 0; j < kGroup; ++j) add_block(sums[g % 2][j], kGroup * g + j);
    }
    for (int64_t b = kGroup * groups; b < nb; ++b) {
      _tile_zero(0);
      _tile_loadd(4, packed + b * kBlockBytes, 32);
      _tile_loadd(6, pair + b * kPairStep, 64);
      _tile_dpbssd(0, 4, 6);
      _tile_stored(0, sums[0][0], 64);
      add_block(sums[0][0], b);
    }
    for (int i = 0; i < kRows; ++i) out[i] = acc[i];
  }
};

// Prefill: the activation rows in blocks that stay in L2, packed in tiles of 16 (the last one padded), meet
// each pair of panels of the range, which repack_pair(r, out) lays out from weight row r once per block.
template <class RepackPair>
void prefill(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
             int64_t y_stride, RepackPair repack_pair) {
  constexpr int kRows = AmxTiles::kRows;
  constexpr int64_t kL2Bytes = int64_t(1) << 20;
  const auto* x = static_cast<const uint8_t*>(xq);
  const size_t x_row_bytes = q8_row_bytes(w.cols);
  const int64_t nb = w.cols / 32, tile_bytes = nb * AmxTiles::kBlockBytes;
  const int64_t x_block = std::max<int64_t>(kRows, kL2Bytes / (tile_bytes / kRows) / kRows * kRows);
  struct alignas(64) Line {  // a vector's worth (a template argument drops __m512i's alignment)
    uint8_t bytes[64];
  };
  thread_local std::vector<Line> pair_lines, result_lines;  // grow to the largest call seen, then stay
  thread_local std::vector<uint8_t> tiles;
  if (pair_lines.size() < size_t(nb * kPairStep)) pair_lines.resize(size_t(nb * kPairStep));
  if (result_lines.size() < size_t(x_block)) result_lines.resize(size_t(x_block));
  if (tiles.size() < size_t(x_block / kRows * tile_bytes)) tiles.resize(size_t(x_block / kRows * tile_bytes));
  auto* pair = reinterpret_cast<__m512i*>(pair_lines.data());
  auto* results = reinterpret_cast<__m512*>(result_lines.data());
  static const TileConfig config;
  _tile_loadconfig(&config);
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t i = i0; i < i1; i += kRows)
      AmxTiles::pack(x + size_t(i) * x_row_bytes, x_row_bytes, int(std::min<int64_t>(kRows, i1 - i)), w.cols,
                     tiles.data() + (i - i0) / kRows * tile_bytes);
    for (int64_t r = row_begin; r < row_end; r += kRows) {
      repack_pair(r, pair);
      for (int64_t i = i0; i < i1; i += kRows)
        AmxTiles::tile(pair, tiles.data() + (i - i0) / kRows * tile_bytes, nb, results + (i - i0));
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
  prefill(xq, m, w, row_begin, row_end, y, y_stride, [&](int64_t r, __m512i* out) {
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
  prefill(xq, m, w, row_begin, row_end, y, y_stride, [&](int64_t r, __m512i* out) {
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
      out[kPanelRows] = _mm512_castps_si512(
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 4 * 64))));  // after the codes
    }
  });
}

}  // namespace

void quant_matmul_rows_amx(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                           float* y, int64_t y_stride) {
  if (m >= AmxTiles::kRows) {
    switch (w.dtype) {
      case DType::Q8_0: return prefill_rows<DType::Q8_0>(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q4_0: return prefill_rows<DType::Q4_0>(xq, m, w, row_begin, row_end, y, y_stride);
      case DType::Q4_0x16: return prefill_q4_0x16(xq, m, w, row_begin, row_end, y, y_stride);
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
