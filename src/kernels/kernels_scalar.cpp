// The reference kernels: plain loops, one f32 accumulator per output, in index order.
#include "kernels/kernels.h"

namespace medlab {
namespace {

float weight_at(const WeightMatrix& w, int64_t r, int64_t c) {
  const int64_t i = r * w.cols + c;
  switch (w.dtype) {
    case DType::F32: return static_cast<const float*>(w.data)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
  }
  return 0;
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

float dot_scalar(const float* a, const float* b, int64_t n) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy_scalar(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table{Isa::Scalar, &matmul_rows_scalar, &dot_scalar, &axpy_scalar};
  return table;
}

}  // namespace medlab
