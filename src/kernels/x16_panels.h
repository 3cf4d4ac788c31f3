// Q4_0, Q4_K, Q5_K and Q6_K weights repacked at load for the kernels (DType::Q4_0x16, Q4_Kx16, Q5_Kx16,
// Q6_Kx16): the same blocks, bytes and values, laid out in panels of 16 rows so that Fast decode reads one
// stream and needs no horizontal sums.
//
// Read in place, a 4- to 6-bit decode step spends more instructions per byte than memory takes to deliver
// it: each block's codes have to be unpacked, the rows' products summed across lanes, and scales gathered
// one by one. In a panel, the codes of 16 rows sit side by side, 4 bytes a row, so one 512-bit load, a mask
// and a shift give 4 values of all 16 rows, against which a broadcast group of 4 activations is multiplied;
// the products land in the rows' own lanes. llama.cpp repacks its 4-bit types at load for the same reason.
//
// Panel p holds rows 16p to 16p + 15 (a last partial panel is padded with zero blocks); its blocks (one per
// block column of the matrix, x16_block_bytes each) follow each other. Code group t is 64 bytes: row j's
// 4 bytes at 4j. For block column b:
//   Q4_0x16 (288 bytes): groups t = 0..3 hold qs[4t..4t+3], that is values 4t..4t+3 in the low nibbles and
//     16+4t..16+4t+3 in the high ones; then the 16 rows' f16 d at 256 + 2j.
//   Q4_Kx16 (2368 bytes): groups t = 0..31 hold qs[4t..4t+3]: with c = t / 8 and e = 4 (t % 8), values
//     64c+e.. (sub-block 2c) in the low nibbles and 64c+32+e.. (sub-block 2c+1) in the high ones; then the
//     6-bit scales unpacked, sub-block s of row j at 2048 + 16s + j, the mins likewise at 2176 + 16s + j,
//     d at 2304 + 2j and dmin at 2336 + 2j (f16).
//   Q5_Kx16 (2880 bytes): first 8 groups u = 0..7 holding qh[4u..4u+3], whose bit s is the fifth bit of
//     sub-block s's values 32s+4u..; then Q4_Kx16's layout, 512 bytes on.
//   Q6_Kx16 (3392 bytes): 16 steps of 192 bytes in the order the kernels read them: step 8n + q (n = 0..1,
//     q = 0..7) holds the groups of ql[64n+4q..], ql[64n+32+4q..] and qh[32n+4q..], whose 4 bytes a row give
//     values 128n + 32k + 4q.. for k = 0..3; then the int8 scales, group g of row j at 3072 + 16g + j, d at
//     3328 + 2j, and 32 bytes of padding. (With ql's and qh's groups in two regions, decode from memory read
//     half as fast: the hardware prefetcher did not follow the two interleaved streams.)
// Code groups are 64-byte aligned when the panel is, except in Q4_0x16's odd blocks.
#pragma once

#include <cstdint>

#include "core/quant.h"

namespace medlab {

inline constexpr int kX16Rows = 16;

// The panel type of a row type (Q4_0, Q4_K, Q5_K, Q6_K), or the type itself when it has none; and back.
constexpr DType x16_type(DType row_type) {
  switch (row_type) {
    case DType::Q4_0: return DType::Q4_0x16;
    case DType::Q4_K: return DType::Q4_Kx16;
    case DType::Q5_K: return DType::Q5_Kx16;
    case DType::Q6_K: return DType::Q6_Kx16;
    default: return row_type;
  }
}
constexpr DType x16_row_type(DType panel_type) {
  switch (panel_type) {
    case DType::Q4_0x16: return DType::Q4_0;
    case DType::Q4_Kx16: return DType::Q4_K;
    case DType::Q5_Kx16: return DType::Q5_K;
    case DType::Q6_Kx16: return DType::Q6_K;
    default: return panel_type;
  }
}

// Offsets inside a Q4_Kx16, a Q5_Kx16 and a Q6_Kx16 block column, as laid out above.
inline constexpr size_t kQ4KScales = 2048, kQ4KMins = 2176, kQ4KD = 2304, kQ4KDmin = 2336;
inline constexpr size_t kQ5KLow = 512;  // where Q4_Kx16's layout starts; the fifth bits before it
inline constexpr size_t kQ6KStep = 192, kQ6KScales = 3072, kQ6KD = 3328;

// Bytes of one block column of a panel: 16 rows' blocks and, for the K-quants, their scales unpacked.
constexpr size_t x16_block_bytes(DType panel_type) {
  switch (panel_type) {
    case DType::Q4_0x16: return 16 * sizeof(BlockQ4_0);
    case DType::Q4_Kx16: return 16 * 128 + 2 * 16 * 8 + 2 * 16 * 2;
    case DType::Q5_Kx16: return kQ5KLow + x16_block_bytes(DType::Q4_Kx16);
    case DType::Q6_Kx16: return 16 * sizeof(BlockQ6_K) + 32;  // padded to whole cache lines
    default: return 0;
  }
}
// Bytes of one panel, and of a [rows, cols] matrix in panels (rows rounded up to whole panels).
inline size_t x16_panel_bytes(DType panel_type, int64_t cols) {
  return size_t(cols / block_elements(panel_type)) * x16_block_bytes(panel_type);
}
size_t x16_bytes(DType panel_type, int64_t rows, int64_t cols);

// Panels [panel_begin, panel_end) of `out` from the row-major matrix `rows_data` [rows, cols] of the row
// type; `out` is the whole packed matrix, x16_bytes(panel_type, rows, cols) long.
void pack_x16(DType panel_type, const void* rows_data, int64_t rows, int64_t cols, int64_t panel_begin,
              int64_t panel_end, void* out);

// Row `row` of a packed matrix as blocks of the row type again (row_bytes(x16_row_type(...), cols) of them).
void unpack_x16_row(DType panel_type, const void* packed, int64_t cols, int64_t row, void* out);

}  // namespace medlab
