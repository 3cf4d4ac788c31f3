// The loops the vector kernel sets share around their register tiles: x rows in blocks that stay in L2
// while weight rows stream past, tiles of 4 (or 1) x rows by up to Tile::kWeightRows weight rows, and the
// dispatch on the weights' dtype. A set supplies
//   struct Tile { static constexpr int kWeightRows; static constexpr int64_t kL2Bytes;
//                 template <DType D, int MR, int NR> static void run(x, k, w, r0, y, y_stride); };
// and includes this header inside its target region, so these loops are compiled for its ISA too.
#pragma once

#include <algorithm>

#include "kernels/kernels.h"

namespace medlab::blocked {

// Tile::run for the edge tile of nr weight rows, nr in 1..NR.
template <class Tile, DType D, int MR, int NR = Tile::kWeightRows>
inline void tile_rows(const float* x, int64_t k, const void* w, int64_t r0, int nr, float* y, int64_t y_stride) {
  if constexpr (NR > 1) {
    if (nr < NR) return tile_rows<Tile, D, MR, NR - 1>(x, k, w, r0, nr, y, y_stride);
  }
  Tile::template run<D, MR, NR>(x, k, w, r0, y, y_stride);
}

template <class Tile, DType D>
void matmul_rows(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
  const int64_t k = w.cols;
  const int64_t x_block = std::max<int64_t>(4, Tile::kL2Bytes / (k * 4) / 4 * 4);
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t r = row_begin; r < row_end; r += Tile::kWeightRows) {
      const int nr = int(std::min<int64_t>(Tile::kWeightRows, row_end - r));
      int64_t i = i0;
      for (; i + 4 <= i1; i += 4) tile_rows<Tile, D, 4>(x + i * k, k, w.data, r, nr, y + i * y_stride, y_stride);
      for (; i < i1; ++i) tile_rows<Tile, D, 1>(x + i * k, k, w.data, r, nr, y + i * y_stride, y_stride);
    }
  }
}

// The KernelTable::matmul_rows entry of a set.
template <class Tile>
void matmul_rows_any(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                     int64_t y_stride) {
  switch (w.dtype) {
    case DType::F32: return matmul_rows<Tile, DType::F32>(x, m, w, row_begin, row_end, y, y_stride);
    case DType::F16: return matmul_rows<Tile, DType::F16>(x, m, w, row_begin, row_end, y, y_stride);
    case DType::BF16: return matmul_rows<Tile, DType::BF16>(x, m, w, row_begin, row_end, y, y_stride);
  }
}

}  // namespace medlab::blocked
