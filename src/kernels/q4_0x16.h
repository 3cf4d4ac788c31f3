// Q4_0 weights repacked at load for the kernels (DType::Q4_0x16): the same blocks, bytes and values, laid out
// in panels of 16 rows so that Fast decode reads one stream and needs no horizontal sums.
//
// Read in place, a Q4_0 decode step spends more instructions per byte than memory takes to deliver it: each
// block's 16 code bytes have to be unpacked, its 8 rows' products summed across lanes and 8 scales gathered
// one by one. In a panel, the codes of 16 rows sit side by side, 4 bytes a row, so one 512-bit load, a mask
// and a shift give 4 values of all 16 rows against which a broadcast group of 4 activations is multiplied,
// and the products land in the rows' own lanes. llama.cpp repacks Q4_0 at load for the same reason.
//
// Panel p holds rows 16p to 16p + 15 (a last partial panel is padded with zero blocks); its blocks follow
// each other, kQ4_0x16BlockBytes each: for block b,
//   bytes 64t to 64t + 63 (t = 0..3): row j's bytes qs[4t..4t+3] at 4j, that is values 4t..4t+3 of block b
//                                     in the low nibbles and values 16+4t..16+4t+3 in the high ones;
//   bytes 256 to 287: the 16 rows' f16 scales d, row j at 2j.
// Every 32 bytes of it start 32-byte aligned when the panel does (the kernels do not need it).
#pragma once

#include <cstdint>

#include "core/quant.h"

namespace medlab {

inline constexpr int kQ4_0x16Rows = 16;
inline constexpr size_t kQ4_0x16BlockBytes = kQ4_0x16Rows * sizeof(BlockQ4_0);  // 288

// Bytes of a [rows, cols] Q4_0 matrix in panels (rows rounded up to whole panels).
size_t q4_0x16_bytes(int64_t rows, int64_t cols);
// Bytes of one panel of a matrix with `cols` columns.
inline size_t q4_0x16_panel_bytes(int64_t cols) { return size_t(cols / 32) * kQ4_0x16BlockBytes; }

// Panels [panel_begin, panel_end) of `out` from the row-major Q4_0 matrix `rows_q4_0` [rows, cols]; `out`
// is the whole packed matrix, q4_0x16_bytes(rows, cols) long.
void pack_q4_0x16(const void* rows_q4_0, int64_t rows, int64_t cols, int64_t panel_begin, int64_t panel_end,
                  void* out);

// Row `row` of a packed matrix as Q4_0 blocks again (cols / 32 of them).
void unpack_q4_0x16_row(const void* packed, int64_t cols, int64_t row, BlockQ4_0* out);

}  // namespace medlab
