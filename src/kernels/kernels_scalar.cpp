// The reference kernels: plain loops, one f32 accumulator per output, in index order.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/bf16_matmul.h"
#include "kernels/fast_elementwise.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"

namespace medlab {
namespace {

float weight_at(const WeightMatrix& w, int64_t r, int64_t c) {
  const int64_t i = r * w.cols + c;
  switch (w.dtype) {
    case DType::F32: return static_cast<const float*>(w.data)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    default: fail("matmul: ", dtype_name(w.dtype), " weights belong to the quantized kernels");
  }
}

void matmul_rows_scalar(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                        float* y, int64_t y_stride) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * w.cols;
      float sum = 0;
      for (int64_t c = 0; c < w.cols; ++c) sum += xi[c] * weight_at(w, r, c);
      y[i * y_stride + r] = sum;
    }
  }
}

}  // namespace

void bf16_matmul_rows_scalar(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin,
                             int64_t row_end, float* y, int64_t y_stride) {
  const int64_t k = w.cols;
  const auto* wd = static_cast<const uint16_t*>(w.data);
  auto value = [&](const uint16_t* row, int64_t c) { return c < k ? flush_subnormal(bf16_to_f32(row[c])) : 0.0f; };
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t i = 0; i < m; ++i) {
      float lane[16] = {};
      for (int64_t c = 0; c < k; c += 32)
        for (int l = 0; l < 16; ++l)
          for (int64_t e : {c + 2 * l + 1, c + 2 * l})
            lane[l] = flush_subnormal(std::fma(value(x + i * k, e), value(wd + r * k, e), lane[l]));
      for (int width = 8; width >= 1; width /= 2)
        for (int l = 0; l < width; ++l) lane[l] = flush_subnormal(lane[l] + lane[l + width]);
      y[i * y_stride + r] = lane[0];
    }
  }
}

float exp_nonpositive(float x) {
  if (x < -87.0f) return 0.0f;
  x = x > -87.0f ? x : -87.0f;  // as vmaxps: NaN becomes -87
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = std::fma(-n, 0.693359375f, x);
  r = std::fma(-n, -2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
    p = std::fma(p, r, c);
  const float e = std::fma(p * r, r, r) + 1.0f;
  const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return e * scale;
}

float gelu_tanh_fast(float x) {
  const float c = 0.044715f * x * x;
  const float z = 1.5957691216057308f * std::fma(c, x, x);
  const float e = exp_nonpositive(-std::fabs(z));
  return (z >= 0.0f ? x : x * e) / (1.0f + e);
}

void bf16_activations_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_activation(x[i]);
}

void gelu_tanh_fast_scalar(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = gelu_tanh_fast(x[i]);
}

const KernelTable& scalar_kernels() {
  static const KernelTable table{Isa::Scalar,
                                 &matmul_rows_scalar,
                                 &dequantize_row,
                                 &quant_matmul_rows_scalar,
                                 &quantize_q8_row,
                                 &bf16_matmul_rows_scalar,
                                 &bf16_activations_scalar,
                                 &gelu_tanh_fast_scalar};
  return table;
}

}  // namespace medlab
