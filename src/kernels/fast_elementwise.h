// The elementwise steps of Precision::Fast, defined operation by operation so that every kernel set gives
// the same bits: the scalar versions are the reference, the AVX2 ones (which the AVX-512 set shares) run the
// same IEEE operations eight floats at a time.
//
// bf16 activations: bf16_activation (bf16_matmul.h) of each value.
// GeLU, tanh form: 0.5 x (1 + tanh(y)) = x sigmoid(z) with z = 2y = 2 sqrt(2/pi) (x + 0.044715 x^3),
//   c = (0.044715 x) x;  z = 1.5957691216057308 * fma(c, x, x);  e = exp_nonpositive(-|z|);
//   gelu = (z >= 0 ? x : x e) / (1 + e)
// where exp_nonpositive is exp_avx2.h's polynomial. Taking e^-|z| never overflows, so no input needs a
// special case; the result is within a few ulp of the exact GeLU (kernels_test.cpp states the bound).
#pragma once

#include <cstdint>

namespace medlab {

float exp_nonpositive(float x);
float gelu_tanh_fast(float x);

void bf16_activations_scalar(const float* x, uint16_t* y, int64_t n);
void bf16_activations_avx2(const float* x, uint16_t* y, int64_t n);
void gelu_tanh_fast_scalar(float* x, int64_t n);
void gelu_tanh_fast_avx2(float* x, int64_t n);

}  // namespace medlab
