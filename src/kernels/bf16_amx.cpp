// The fast bf16 matmul of the amx set, on AMX-BF16 tiles: 16 weight rows x 16 activation rows per tile
// product, 32 columns deep. The weight rows are the first operand, read in place (from the mapped file); the
// activations are packed as the second, whose layout holds pairs of columns. Used for every number of
// activation rows, decode included, so that a row's result never depends on what shares its call.
//
// The order, per output: an f32 sum starts at +0 and takes one tdpbf16ps per chunk of 32 columns (the last
// one padded with zeros), in column order. Inside a chunk AMX rounds in its own way, which no sequence of
// IEEE operations reproduces, so these bits are the amx set's own (bf16_matmul.h); they depend only on the
// activation row, the weight row and the number of columns.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/bf16_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16"))), \
                             apply_to = function)
#endif

namespace medlab {
namespace {

constexpr int kTileRows = 16;  // weight rows per tile, and activation rows per packed group
constexpr int kChunk = 32;     // columns per tile product

// The tile registers' shapes for n activation rows per group: 0-3 sums, 16 weight rows x n activation rows of
// f32; 4-5 a chunk of 16 weight rows; 6-7 a chunk of n activation rows as 16 rows of column pairs.
AmxTileConfig bf16_tiles(int n) {
  return AmxTileConfig().shape(0, 3, kTileRows, 4 * n).shape(4, 5, kTileRows, 2 * kChunk).shape(6, 7, kTileRows, 4 * n);
}

// 16 weight rows: their whole chunks in place, the last partial chunk (if any) from a zero-padded copy.
struct WeightTile {
  const uint16_t* rows;
  int64_t row_bytes;
  int64_t in_place;  // chunks
  alignas(64) uint16_t tail[kTileRows][kChunk];

  const void* chunk(int64_t c) const { return c < in_place ? rows + c * kChunk : tail[0]; }
  int64_t stride(int64_t c) const { return c < in_place ? row_bytes : 2 * kChunk; }
};

// Rows [r, r + 16) of w, as a tile; rows past the matrix's end come from `padded` (zeros beyond them).
void weight_tile(const WeightMatrix& w, int64_t r, std::vector<uint16_t>& padded, WeightTile& t) {
  const int64_t k = w.cols, chunks = (k + kChunk - 1) / kChunk;
  const auto* data = static_cast<const uint16_t*>(w.data) + r * k;
  const int64_t present = std::min<int64_t>(kTileRows, w.rows - r);
  if (present < kTileRows) {
    padded.assign(size_t(kTileRows * chunks * kChunk), 0);
    for (int64_t i = 0; i < present; ++i) std::memcpy(&padded[size_t(i * chunks * kChunk)], data + i * k, size_t(k) * 2);
    t.rows = padded.data();
    t.row_bytes = chunks * kChunk * 2;
    t.in_place = chunks;
    return;
  }
  t.rows = data;
  t.row_bytes = k * 2;
  t.in_place = k / kChunk;
  if (t.in_place == chunks) return;
  std::memset(t.tail, 0, sizeof t.tail);
  for (int i = 0; i < kTileRows; ++i)
    std::memcpy(t.tail[i], data + i * k + t.in_place * kChunk, size_t(k - t.in_place * kChunk) * 2);
}

// Activation rows in groups of 16 (of n when there are fewer), chunk by chunk: for each pair of columns
// (2p, 2p + 1) of the chunk, the n rows' two values side by side. Past the rows and columns: zeros. A
// gather takes one pair of columns of a group's rows.
void pack_activations(const uint16_t* x, int64_t m, int64_t k, int n, uint32_t* out) {
  const int64_t chunks = (k + kChunk - 1) / kChunk, groups = (m + kTileRows - 1) / kTileRows;
  const int64_t group_size = chunks * kTileRows * n, pairs = chunks * kTileRows, whole_pairs = k / 2;
  const __m512i row_offsets = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(int(k)));
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = g * kTileRows, rows = std::min<int64_t>(kTileRows, m - first);
    const __mmask16 present = __mmask16((1u << rows) - 1);
    const uint16_t* from = x + first * k;
    uint32_t* to = out + g * group_size;
    for (int64_t p = 0; p < whole_pairs; ++p) {
      const __m512i pair = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), present, row_offsets, from + 2 * p, 2);
      _mm512_mask_storeu_epi32(to + p * n, __mmask16((1u << n) - 1), pair);
    }
    std::memset(to + whole_pairs * n, 0, size_t((pairs - whole_pairs) * n) * 4);
    if (k % 2)
      for (int64_t i = 0; i < rows; ++i) to[whole_pairs * n + i] = from[i * k + k - 1];
  }
}

struct alignas(64) TileSums {
  float at[kTileRows][kTileRows];  // [weight row][activation row]
};

// The products of kW weight tiles and kX activation groups over all chunks, into sums[i] for weight tile
// i / kX and group i % kX.
template <int kW, int kX>
void tile_products(const WeightTile* w, const uint32_t* x, int64_t x_group_size, int n, int64_t chunks,
                   TileSums* sums) {
  static_assert(kW <= 2 && kX <= 2);
  const int64_t x_bytes = 4 * n, x_chunk = kTileRows * n;
  _tile_zero(0);
  if constexpr (kW * kX > 1) _tile_zero(1);
  if constexpr (kW * kX > 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t c = 0; c < chunks; ++c) {
    _tile_loadd(6, x + c * x_chunk, x_bytes);
    if constexpr (kX == 2) _tile_loadd(7, x + x_group_size + c * x_chunk, x_bytes);
    _tile_loadd(4, w[0].chunk(c), w[0].stride(c));
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kX == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (kW == 2) {
      _tile_loadd(5, w[1].chunk(c), w[1].stride(c));
      if constexpr (kX == 2) {
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      } else {
        _tile_dpbf16ps(1, 5, 6);
      }
    }
  }
  _tile_stored(0, sums[0].at, 64);
  if constexpr (kW * kX > 1) _tile_stored(1, sums[1].at, 64);
  if constexpr (kW * kX > 2) {
    _tile_stored(2, sums[2].at, 64);
    _tile_stored(3, sums[3].at, 64);
  }
}

// The rows [r, r + 16) that [row_begin, row_end) keeps, of sums[i][a] for activation rows a from `row`: a
// gather takes a column of the tile, which is a row of y.
void store(const TileSums& sums, int64_t row, int64_t m, int64_t r, int64_t row_end, float* y,
           int64_t y_stride) {
  const int64_t nr = std::min<int64_t>(kTileRows, row_end - r), na = std::min<int64_t>(kTileRows, m - row);
  const __mmask16 keep = __mmask16((1u << nr) - 1);
  const __m512i column = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(kTileRows));
  for (int64_t a = 0; a < na; ++a)
    _mm512_mask_storeu_ps(y + (row + a) * y_stride + r, keep, _mm512_i32gather_ps(column, &sums.at[0][a], 4));
}

// y[i][r] for the packed activation rows i < m and the weight rows r in [row_begin, row_end).
void block_products(const uint32_t* packed, int64_t m, int n, const WeightMatrix& w, int64_t row_begin,
                    int64_t row_end, std::vector<uint16_t>& padded, float* y, int64_t y_stride) {
  const int64_t k = w.cols, chunks = (k + kChunk - 1) / kChunk, groups = (m + kTileRows - 1) / kTileRows;
  const int64_t group_size = chunks * kTileRows * n;
  WeightTile tiles[2];
  TileSums sums[4];
  if (m < kTileRows) {
    // Decode: one weight tile at a time against the one group. (More tiles at once, or prefetching, make
    // more streams than the hardware follows; they measured slower.)
    for (int64_t r = row_begin; r < row_end; r += kTileRows) {
      weight_tile(w, r, padded, tiles[0]);
      tile_products<1, 1>(tiles, packed, group_size, n, chunks, sums);
      store(sums[0], 0, m, r, row_end, y, y_stride);
    }
  } else {
    // Prefill: 2 x 2 tiles, the weight rows in blocks that stay in L2 while every group passes over them.
    // (Spans of columns whose groups stay in L1, their sums kept in memory between spans, measured slower.)
    constexpr int64_t kL2Bytes = int64_t(1) << 20;
    const int64_t block_rows =
        std::max<int64_t>(2 * kTileRows, kL2Bytes / 2 / (k * 2) / (2 * kTileRows) * 2 * kTileRows);
    for (int64_t j0 = row_begin; j0 < row_end; j0 += block_rows) {
      const int64_t j1 = std::min(row_end, j0 + block_rows);
      for (int64_t r = j0; r < j1; r += 2 * kTileRows) {
        const bool two = r + kTileRows < j1;
        weight_tile(w, r, padded, tiles[0]);
        if (two) weight_tile(w, r + kTileRows, padded, tiles[1]);
        for (int64_t g = 0; g < groups; g += 2) {
          const uint32_t* xg = packed + g * group_size;
          const int64_t row = g * kTileRows;
          if (g + 1 < groups) {
            if (two) {
              tile_products<2, 2>(tiles, xg, group_size, n, chunks, sums);
              store(sums[2], row, m, r + kTileRows, row_end, y, y_stride);
              store(sums[3], row + kTileRows, m, r + kTileRows, row_end, y, y_stride);
            } else {
              tile_products<1, 2>(tiles, xg, group_size, n, chunks, sums);
            }
            store(sums[0], row, m, r, row_end, y, y_stride);
            store(sums[1], row + kTileRows, m, r, row_end, y, y_stride);
          } else {
            if (two) {
              tile_products<2, 1>(tiles, xg, group_size, n, chunks, sums);
              store(sums[1], row, m, r + kTileRows, row_end, y, y_stride);
            } else {
              tile_products<1, 1>(tiles, xg, group_size, n, chunks, sums);
            }
            store(sums[0], row, m, r, row_end, y, y_stride);
          }
        }
      }
    }
  }
}

}  // namespace

void bf16_matmul_rows_amx(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                          float* y, int64_t y_stride) {
  const int64_t k = w.cols, chunks = (k + kChunk - 1) / kChunk;
  const int n = int(std::min<int64_t>(m, kTileRows));
  // The activation rows in blocks whose packed form stays in L2 while the weight rows pass over them: one
  // block where the rows fit in 1.5 MiB (the weights are then read once), else blocks of 1 MiB, which leave
  // more of L2 to the weight block (the vision tower's 4096 rows, 2 threads: its MLP down projection 960 ->
  // 1350 GFLOP/s against 1.5 MiB blocks, its up projection 945 -> 1030).
  constexpr int64_t kOneBlockBytes = int64_t(3) << 19, kBlockBytes = int64_t(1) << 20;
  const int64_t group_size = chunks * kTileRows * n, groups = (m + kTileRows - 1) / kTileRows;
  const int64_t block_groups = groups * group_size * 4 <= kOneBlockBytes
                                   ? groups
                                   : std::max<int64_t>(2, kBlockBytes / (group_size * 4) / 2 * 2);
  thread_local std::vector<uint32_t> packed;  // grows to the largest call seen, then stays
  thread_local std::vector<uint16_t> padded;
  if (packed.size() < size_t(block_groups * group_size)) packed.resize(size_t(block_groups * group_size));
  const AmxTileConfig config = bf16_tiles(n);
  _tile_loadconfig(&config);
  for (int64_t first = 0; first < m; first += block_groups * kTileRows) {
    const int64_t rows = std::min(m - first, block_groups * kTileRows);
    pack_activations(x + first * k, rows, k, n, packed.data());
    block_products(packed.data(), rows, n, w, row_begin, row_end, padded, y + first * y_stride, y_stride);
  }
  _tile_release();  // the thread's 8 KiB of tile state need not be saved at each switch
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
