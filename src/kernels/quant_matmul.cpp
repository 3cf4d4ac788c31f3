// The drivers of quantized matmul: the split over threads and the per-call scratch, for any kernel set.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/x16_panels.h"
#include "kernels/quant_matmul.h"

namespace medlab {
namespace {

// Exact: each thread dequantizes panels of its weight rows (small enough to stay in L2 beside a block of
// x rows) and hands them to the set's f32 matmul; a panel is reused by every x row of the block.
void matmul_exact(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w,
                  float* y) {
  constexpr int64_t kPanelBytes = int64_t(1) << 17, kXBlockBytes = int64_t(1) << 19;
  const int64_t cols = w.cols;
  const size_t w_row_bytes = row_bytes(w.dtype, cols);
  const bool packed = is_x16_panels(w.dtype);  // rows back to their row type's blocks first
  const DType row_type = x16_row_type(w.dtype);
  const int64_t panel_rows = std::clamp<int64_t>(kPanelBytes / (cols * 4), 4, 16);
  const int64_t x_block = std::max<int64_t>(4, kXBlockBytes / (cols * 4));
  split_weight_rows(pool, m, w.rows, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> panel;  // grows to the largest panel seen, then stays
    thread_local std::vector<uint8_t> unpacked;
    if (panel.size() < size_t(panel_rows * cols)) panel.resize(size_t(panel_rows * cols));
    if (packed && unpacked.size() < w_row_bytes) unpacked.resize(w_row_bytes);
    for (int64_t i0 = 0; i0 < m; i0 += x_block) {
      const int64_t rows_x = std::min(x_block, m - i0);
      for (int64_t r0 = begin; r0 < end; r0 += panel_rows) {
        const int64_t nr = std::min(panel_rows, end - r0);
        for (int64_t j = 0; j < nr; ++j) {
          if (packed) {
            unpack_x16_row(w.dtype, w.data, cols, r0 + j, unpacked.data());
            k.dequantize(row_type, unpacked.data(), panel.data() + j * cols, cols);
          } else {
            k.dequantize(w.dtype, static_cast<const uint8_t*>(w.data) + size_t(r0 + j) * w_row_bytes,
                         panel.data() + j * cols, cols);
          }
        }
        const WeightMatrix f32_panel{DType::F32, nr, cols, panel.data()};
        k.matmul_rows(x + i0 * cols, rows_x, f32_panel, 0, nr, y + i0 * w.rows + r0, w.rows);
      }
    }
  });
}

}  // namespace

void quantize_q8_row(const float* x, int64_t cols, uint8_t* out) {
  std::memset(out, 0, q8_row_bytes(cols));
  auto* qs = reinterpret_cast<int8_t*>(out);
  const Q8Row row = q8_row(out, cols);
  auto* d = const_cast<float*>(row.d);
  auto* sums = const_cast<int32_t*>(row.sums);
  for (int64_t b = 0; b < cols / 32; ++b) {
    BlockQ8_0 block;
    quantize_row(DType::Q8_0, x + 32 * b, &block, 32);
    std::memcpy(qs + 32 * b, block.qs, 32);
    d[b] = f16_to_f32(block.d);
    for (int8_t q : block.qs) sums[b] += q;
  }
}

namespace {

// Fast: every activation row is quantized once, on the caller's threads, into scratch that only grows.
void matmul_fast(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w,
                 float* y) {
  const DType x_type = fast_activation_type(w.dtype);
  const size_t x_row_bytes = fast_activation_row_bytes(w.dtype, w.cols);
  struct alignas(32) Line {  // so that Q8Row values and scales start on 32-byte boundaries
    uint8_t bytes[32];
  };
  thread_local std::vector<Line> xq;
  if (xq.size() * 32 < size_t(m) * x_row_bytes) xq.resize((size_t(m) * x_row_bytes + 31) / 32);
  uint8_t* xq_data = xq.data()->bytes;
  pool.parallel_for(m, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      uint8_t* row = xq_data + size_t(i) * x_row_bytes;
      if (x_type == DType::Q8_0)
        k.quantize_q8_row(x + i * w.cols, w.cols, row);
      else
        quantize_row(x_type, x + i * w.cols, row, w.cols);
    }
  });
  split_weight_rows(pool, m, w.rows,
                    [&](int64_t begin, int64_t end) { k.quant_matmul_rows(xq_data, m, w, begin, end, y, w.rows); });
}

}  // namespace

void quant_matmul(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w,
                  float* y, Precision precision) {
  if (w.dtype == DType::Q8_K) fail("matmul: q8_k holds activations, not weights");
  const int64_t block = std::max(block_elements(w.dtype), block_elements(fast_activation_type(w.dtype)));
  if (w.cols % block != 0)
    fail("matmul: ", dtype_name(w.dtype), " weights need a multiple of ", block, " columns, got ", w.cols);
  if (precision == Precision::Exact) return matmul_exact(k, pool, x, m, w, y);
  matmul_fast(k, pool, x, m, w, y);
}

}  // namespace medlab
