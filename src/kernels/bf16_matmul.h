// Matrix multiply with bf16 weights in Precision::Fast: activations rounded to bf16 and products summed in
// pairs, the order AVX512-BF16's vdpbf16ps computes in (as llama.cpp's bf16 path multiplies). The scalar,
// avx2 and avx512 sets give the same bits: AVX512-BF16 CPUs run the instruction, the others emulate it with
// f32 FMAs. The amx set takes AMX-BF16 tiles instead, in an order of its own (bf16_amx.cpp) whose bits no
// other set gives; it is tested against float64 and for its independence of rows and threads.
//
// The order, per output: 16 f32 lanes start at +0. For each chunk of 32 columns (the last one padded with
// zeros), lane l adds x[2l + 1] * w[2l + 1], then x[2l] * w[2l], each by one fused multiply-add. Subnormal
// inputs count as zero and subnormal results become zero (vdpbf16ps's rules, MXCSR's FTZ and DAZ for the
// emulation). The lanes are then summed as s8[l] = lane[l] + lane[l + 8], s4[l] = s8[l] + s8[l + 4],
// s2[l] = s4[l] + s4[l + 2], s2[0] + s2[1], under the same flush rules.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace medlab {

// An activation to bf16 as the fast path takes it: nearest even, subnormals to a zero of their sign.
inline uint16_t bf16_activation(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7f800000u) == 0) return uint16_t((bits >> 16) & 0x8000u);
  return f32_to_bf16(v);
}

// A subnormal float as the flush rules above leave it.
inline float flush_subnormal(float v) { return std::fpclassify(v) == FP_SUBNORMAL ? std::copysign(0.0f, v) : v; }

// The MXCSR bits of flush-to-zero and denormals-are-zero.
constexpr unsigned kFlushDenormals = 0x8040;

// y[i][r] = x[i] . w[r] for bf16 activation rows x (w.cols apart) and bf16 weights, in the order above.
void bf16_matmul_rows_scalar(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin,
                             int64_t row_end, float* y, int64_t y_stride);
void bf16_matmul_rows_avx2(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                           float* y, int64_t y_stride);
void bf16_matmul_rows_avx512_bf16(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin,
                                  int64_t row_end, float* y, int64_t y_stride);
void bf16_matmul_rows_amx(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                          float* y, int64_t y_stride);

}  // namespace medlab
