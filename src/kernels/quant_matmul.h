// Matrix multiply with block-quantized weights (core/quant.h): the forms both precisions work in, shared
// by the scalar and AVX2 kernels, and the entry points each ISA supplies to its KernelTable.
//
// Exact: a panel of weight rows is dequantized to f32 (bit for bit as dequantize_row) and multiplied by the
// ISA's own f32 matmul, so each output keeps that kernel's fixed reduction order.
// Fast: activation rows are quantized once per call (Q8_K for the K-quants, Q8_0 otherwise); each weight
// block meets an activation block in integers, and the block sums are added in float in block order. Q8_0
// and Q4_0 add block b's integer sum, times d_w * d_x rounded to float, by one fused multiply-add; the
// K-quants add a super-block's scaled integer sum the same way, then Q4_K and Q5_K its scaled integer mins,
// times -(dmin_w * d_x), by a second one (Q6_K subtracts its offset of 32 in integers). Vector code keeps
// 8 weight rows in the 8 lanes of a vector (16 in 16 for the panels repacked at load: kernels/x16_panels.h),
// so no horizontal sum ends an output. The AVX2 K-quant and NF4 kernels that read rows in place are the
// exception: 8-lane accumulators, each ended by a fixed horizontal sum.
// NF4 uses its 16 levels as int16 in units of 2^-14 (within 3e-5 of the exact levels) against Q8_0
// activations: as fast as int8 levels, and adds almost no error to the activations' own rounding.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/quant.h"
#include "kernels/kernels.h"

namespace medlab {

// The block type activation rows take in Precision::Fast against weights of type `weights`.
constexpr DType fast_activation_type(DType weights) {
  return block_elements(weights) == kQK ? DType::Q8_K : DType::Q8_0;
}

// Q8_0 activations in the layout the kernels read, not in blocks: the int8 values of quantize_row's Q8_0
// blocks, then their f16 scales widened to float, then each block's sum of values (for Q4_0's offset of 8);
// padded to a multiple of 32 bytes, so that rows laid end to end keep their values 32-byte aligned.
inline size_t q8_row_bytes(int64_t cols) {
  const int64_t blocks = cols / 32;
  return size_t(32 * blocks + (8 * blocks + 31) / 32 * 32);
}
struct Q8Row {
  const int8_t* qs;
  const float* d;
  const int32_t* sums;
};
inline Q8Row q8_row(const void* row, int64_t cols) {
  const auto* qs = static_cast<const int8_t*>(row);
  const auto* d = reinterpret_cast<const float*>(qs + cols);
  return {qs, d, reinterpret_cast<const int32_t*>(d + cols / 32)};
}
// The bytes one activation row takes against weights of type `weights` (Q8_K rows, or q8_row_bytes).
inline size_t fast_activation_row_bytes(DType weights, int64_t cols) {
  return fast_activation_type(weights) == DType::Q8_0 ? q8_row_bytes(cols) : row_bytes(DType::Q8_K, cols);
}

// round(kNf4Levels[i] * 2^14); the Fast NF4 weight is level * absmax * 2^-14.
inline constexpr int kNf4LevelBits = 14;
inline constexpr int16_t kNf4LevelsInt[16] = {-16384, -11406, -8603, -6470, -4660, -3027, -1492, 0,
                                              1304,   2637,   4032,  5536,  7221,  9218,  11845, 16384};

// The 6-bit scales and mins of the 8 sub-blocks of a Q4_K/Q5_K super-block, byte s of each word for
// sub-block s, from their 12-byte packing: bytes 0-3 hold scales 0-3 (low 6 bits) and the top bits of
// scales 4-7, bytes 4-7 the same for mins, bytes 8-11 the low nibbles of scales 4-7 (low) and mins 4-7 (high).
struct K4Scales {
  uint64_t scales, mins;
};
inline K4Scales unpack_k4_scales(const uint8_t packed[12]) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
  const uint64_t scales_high = (w[2] & low4) | (((w[0] >> 6) & low2) << 4);
  const uint64_t mins_high = ((w[2] >> 4) & low4) | (((w[1] >> 6) & low2) << 4);
  return {(w[0] & low6) | (scales_high << 32), (w[1] & low6) | (mins_high << 32)};
}

// A K-quant super-block as Fast dot products use it: value e = d * scale(e) * q[e] - dmin * min(e), with
// q in [0, 63], scale and min per group of 16 (Q6_K's offset of 32 becomes min = 32 * scale, dmin = d).
struct KQuantLevels {
  alignas(32) uint8_t q[kQK];
  alignas(32) int16_t scales[kQK / 32][16];  // per 32 values: scale of its first 16 in lanes 0-7, second 16 in 8-15
  alignas(32) int16_t mins[16];              // per 16 values
  float d, dmin;
};

// One activation row to the Q8Row layout: quantize_row's Q8_0 blocks taken apart (the reference), and the
// same bytes from AVX2.
void quantize_q8_row(const float* x, int64_t cols, uint8_t* out);
void quantize_q8_row_avx2(const float* x, int64_t cols, uint8_t* out);

// Per-ISA pieces, wired into the KernelTables.
void dequantize_row_avx2(DType type, const void* row, float* y, int64_t n);
void quant_matmul_rows_scalar(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin,
                              int64_t row_end, float* y, int64_t y_stride);
void quant_matmul_rows_avx2(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                            float* y, int64_t y_stride);
// AVX512-VNNI for Q8_0 and Q4_0, the AVX2 kernels for the other types.
void quant_matmul_rows_avx512_vnni(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin,
                                   int64_t row_end, float* y, int64_t y_stride);

// AMX for the prefill (16 or more activation rows) of Q8_0, Q4_0, Q4_0x16, Q4_Kx16 and Q5_Kx16, the
// AVX512-VNNI kernels otherwise: the same bits. Only where amx_usable() (kernels/cpu_features.h).
void quant_matmul_rows_amx(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                           float* y, int64_t y_stride);

// matmul() for quantized weights, in either precision.
void quant_matmul(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w,
                  float* y, Precision precision);

}  // namespace medlab
