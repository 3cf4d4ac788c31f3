// The loops of the fast bf16 matmul (bf16_matmul.h's order) around a kernel set's register tile. A set
// includes this inside its target region and anonymous namespace after defining
//   struct PairTile {
//     using Vec;                                          // an output's 16 lanes
//     static constexpr int kRowsX, kRowsW, kDecodeRows;   // tiles of kRowsX x rows by kRowsW weight rows,
//                                                         // 1 x kDecodeRows for fewer x rows (decode)
//     static constexpr int64_t kL2Bytes;                  // the L2 share a block of weight rows may fill
//     template <int MR, int NR, bool kStream>             // acc[j * MR + i] += x[i] . w[j] over all k columns;
//     static void run(const uint16_t* x, const uint16_t* w, int64_t k, Vec* acc);  // kStream: w comes from
//     static float sum(Vec lanes);                        // memory once; the lanes' sum in the fixed order
//   };
// The including file provides <algorithm> and <immintrin.h>.
#pragma once

template <class T, int MR, int NR, bool kStream>
void pair_tile_rows(const uint16_t* x, const uint16_t* w, int64_t k, int nr, typename T::Vec* acc) {
  if constexpr (NR > 1) {
    if (nr < NR) return pair_tile_rows<T, MR, NR - 1, kStream>(x, w, k, nr, acc);
  }
  T::template run<MR, NR, kStream>(x, w, k, acc);
}

template <class T>
void bf16_pair_rows(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                    int64_t y_stride) {
  using Vec = typename T::Vec;
  constexpr int MR = T::kRowsX, NR = T::kRowsW, ND = T::kDecodeRows;
  const int64_t k = w.cols;
  const auto* wd = static_cast<const uint16_t*>(w.data);
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | kFlushDenormals);  // the emulation's products and every set's lane sums
  if (m < MR) {
    for (int64_t r = row_begin; r < row_end; r += ND) {
      const int nr = int(std::min<int64_t>(ND, row_end - r));
      for (int64_t i = 0; i < m; ++i) {
        Vec acc[ND] = {};
        pair_tile_rows<T, 1, ND, true>(x + i * k, wd + r * k, k, nr, acc);
        for (int j = 0; j < nr; ++j) y[i * y_stride + r + j] = T::sum(acc[j]);
      }
    }
  } else {
    // Weight rows in blocks that stay in L2 while every x row passes over them.
    const int64_t block_rows = std::max<int64_t>(NR, T::kL2Bytes / 2 / (k * 2) / NR * NR);
    for (int64_t j0 = row_begin; j0 < row_end; j0 += block_rows) {
      const int64_t j1 = std::min(row_end, j0 + block_rows);
      for (int64_t i = 0; i < m;) {
        const int mr = i + MR <= m ? MR : 1;
        for (int64_t r = j0; r < j1; r += NR) {
          const int nr = int(std::min<int64_t>(NR, j1 - r));
          Vec acc[MR * NR] = {};
          if (mr == MR)
            pair_tile_rows<T, MR, NR, false>(x + i * k, wd + r * k, k, nr, acc);
          else
            pair_tile_rows<T, 1, NR, false>(x + i * k, wd + r * k, k, nr, acc);
          for (int j = 0; j < nr; ++j)
            for (int ii = 0; ii < mr; ++ii) y[(i + ii) * y_stride + r + j] = T::sum(acc[j * mr + ii]);
        }
        i += mr;
      }
    }
  }
  _mm_setcsr(csr);
}
