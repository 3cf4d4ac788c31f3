// The loops the vector kernel sets share around their register tiles, and the dispatch on the weights' dtype.
// A set supplies
//   struct Tile {
//     using Vec;                                    // one accumulator register
//     static constexpr int kWeightRows;             // weight rows per tile of 4 x rows (prefill)
//     static constexpr int kDecodeRows;             // weight rows per tile of 1 x row (decode)
//     static constexpr int64_t kL2Bytes, kL3Bytes;  // cache shares the blocks below may fill
//     template <DType D, int MR, int NR, bool kStream>  // acc[j * MR + i] += x[i] . w[r0 + j] over columns
//     static void run(const float* x, int64_t k, const void* w,  // [c0, c1); kStream: w is read once, from
//                     int64_t r0, int64_t c0, int64_t c1, Vec* acc);  // memory (decode), not from a panel
//     template <DType D> static void widen(const void* w, int64_t first, int64_t n, float* out);
//     static float sum(Vec acc);                    // the fixed horizontal sum
//   };
// and includes this header inside its target region, so these loops are compiled for its ISA too.
//
// Every output is one Vec accumulator that walks K from 0 in steps of its lane count, then Tile::sum.
// Blocking only decides when an accumulator is parked in memory and picked up again, which changes no
// bits: an output is the same whether it was computed alone (decode) or in a packed block (prefill).
#pragma once

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/kernels.h"

namespace medlab::blocked {

// Tile::run for the edge tile of nr weight rows, nr in 1..NR.
template <class Tile, DType D, int MR, int NR, bool kStream = false>
inline void tile_rows(const float* x, int64_t k, const void* w, int64_t r0, int nr, int64_t c0, int64_t c1,
                      typename Tile::Vec* acc) {
  if constexpr (NR > 1) {
    if (nr < NR) return tile_rows<Tile, D, MR, NR - 1, kStream>(x, k, w, r0, nr, c0, c1, acc);
  }
  Tile::template run<D, MR, NR, kStream>(x, k, w, r0, c0, c1, acc);
}

// Few x rows (decode, or a batched decode step of several requests): weights are read in their stored dtype
// straight from memory, each weight vector widened once for a group of 4 x rows, or for one x row at a time
// for the rest.
template <class Tile, DType D>
void direct_rows(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
  constexpr int MR = 4, NR4 = Tile::kWeightRows, NR = Tile::kDecodeRows;
  const int64_t k = w.cols;
  int64_t i0 = 0;
  for (; i0 + MR <= m; i0 += MR)
    for (int64_t r = row_begin; r < row_end; r += NR4) {
      const int nr = int(std::min<int64_t>(NR4, row_end - r));
      typename Tile::Vec acc[MR * NR4] = {};
      tile_rows<Tile, D, MR, NR4, true>(x + i0 * k, k, w.data, r, nr, 0, k, acc);
      for (int j = 0; j < nr; ++j)
        for (int i = 0; i < MR; ++i) y[(i0 + i) * y_stride + r + j] = Tile::sum(acc[j * MR + i]);
    }
  for (int64_t r = row_begin; r < row_end; r += NR) {
    const int nr = int(std::min<int64_t>(NR, row_end - r));
    for (int64_t i = i0; i < m; ++i) {
      typename Tile::Vec acc[NR] = {};
      tile_rows<Tile, D, 1, NR, true>(x + i * k, k, w.data, r, nr, 0, k, acc);
      for (int j = 0; j < nr; ++j) y[i * y_stride + r + j] = Tile::sum(acc[j]);
    }
  }
}

// Many x rows (prefill, vision): blocks of weight rows widened to f32 once into a per-thread panel that stays
// in L2 while tiles of 4 x rows (a block of them staying in L3) pass over it, K in chunks that keep the
// tile's x rows in L1. Accumulators are parked between chunks.
template <class Tile, DType D>
void packed_rows(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
  using Vec = typename Tile::Vec;
  constexpr int MR = 4, NR = Tile::kWeightRows;
  constexpr int64_t kMaxBlockRows = 96 / NR * NR, kChunk = 512;
  const int64_t k = w.cols;
  const int64_t block_rows = std::clamp<int64_t>(Tile::kL2Bytes / 2 / (k * 4) / NR * NR, NR, kMaxBlockRows);
  const int64_t x_block = std::max<int64_t>(MR, Tile::kL3Bytes / (k * 4) / MR * MR);
  static thread_local std::vector<float> panel;  // only grows
  if (D != DType::F32 && panel.size() < size_t(block_rows * k)) panel.resize(size_t(block_rows * k));
  alignas(64) Vec acc[MR * kMaxBlockRows];

  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t j0 = row_begin; j0 < row_end; j0 += block_rows) {
      const int64_t rows = std::min(block_rows, row_end - j0);
      const float* p = static_cast<const float*>(w.data) + j0 * k;
      if constexpr (D != DType::F32) {
        Tile::template widen<D>(w.data, j0 * k, rows * k, panel.data());
        p = panel.data();
      }
      for (int64_t i = i0; i < i1;) {
        const int mr = i + MR <= i1 ? MR : 1;
        std::fill(acc, acc + mr * rows, Vec{});
        for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
          const int64_t c1 = std::min(k, c0 + kChunk);
          for (int64_t r = 0; r < rows; r += NR) {
            const int nr = int(std::min<int64_t>(NR, rows - r));
            if (mr == MR) tile_rows<Tile, DType::F32, MR, NR>(x + i * k, k, p, r, nr, c0, c1, acc + r * MR);
            else tile_rows<Tile, DType::F32, 1, NR>(x + i * k, k, p, r, nr, c0, c1, acc + r);
          }
        }
        for (int ii = 0; ii < mr; ++ii)
          for (int64_t j = 0; j < rows; ++j) y[(i + ii) * y_stride + j0 + j] = Tile::sum(acc[j * mr + ii]);
        i += mr;
      }
    }
  }
}

// Below this many x rows, widening weights into a panel costs more than it saves.
constexpr int64_t kDirectRows = 8;

template <class Tile, DType D>
void matmul_rows(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
  if (m < kDirectRows) return direct_rows<Tile, D>(x, m, w, row_begin, row_end, y, y_stride);
  packed_rows<Tile, D>(x, m, w, row_begin, row_end, y, y_stride);
}

// The KernelTable::matmul_rows entry of a set.
template <class Tile>
void matmul_rows_any(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                     int64_t y_stride) {
  switch (w.dtype) {
    case DType::F32: return matmul_rows<Tile, DType::F32>(x, m, w, row_begin, row_end, y, y_stride);
    case DType::F16: return matmul_rows<Tile, DType::F16>(x, m, w, row_begin, row_end, y, y_stride);
    case DType::BF16: return matmul_rows<Tile, DType::BF16>(x, m, w, row_begin, row_end, y, y_stride);
    default: fail("matmul: ", dtype_name(w.dtype), " weights belong to the quantized kernels");
  }
}

}  // namespace medlab::blocked
