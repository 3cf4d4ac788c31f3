// The reference Fast kernels: one output at a time, each block's integer sum then float sums over
// blocks in the order quant_matmul.h defines. (Exact needs nothing here: the scalar set dequantizes with
// dequantize_row.)
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/x16_panels.h"
#include "kernels/quant_matmul.h"

namespace medlab {
namespace {

float half(uint16_t h) { return f16_to_f32(h); }

// Q8_0 and Q4_0: the order quant_matmul.h defines, one fused multiply-add per block.
template <class Block, void (*Values)(const Block&, int8_t (&)[32])>
float dot_row_blocks(const Block* w, const uint8_t* xq, int64_t cols) {
  const Q8Row x = q8_row(xq, cols);
  float acc = 0;
  int8_t values[32];
  for (int64_t b = 0; b < cols / 32; ++b) {
    Values(w[b], values);
    int32_t sum = 0;
    for (int e = 0; e < 32; ++e) sum += int32_t(values[e]) * x.qs[32 * b + e];
    acc = std::fma(half(w[b].d) * x.d[b], float(sum), acc);
  }
  return acc;
}

void values_q8_0(const BlockQ8_0& w, int8_t (&values)[32]) { std::copy(w.qs, w.qs + 32, values); }

void values_q4_0(const BlockQ4_0& w, int8_t (&values)[32]) {  // code - 8; low nibbles first
  for (int e = 0; e < 16; ++e) {
    values[e] = int8_t((w.qs[e] & 0x0F) - 8);
    values[e + 16] = int8_t((w.qs[e] >> 4) - 8);
  }
}

// One NF4 block of 64 meets two Q8_0 blocks.
float dot_row_nf4(const BlockNF4* w, const uint8_t* xq, int64_t cols) {
  const Q8Row x = q8_row(xq, cols);
  float acc = 0;
  for (int64_t b = 0; b < cols / 64; ++b) {
    const float d = w[b].d * (1.0f / float(1 << kNf4LevelBits));
    for (int h = 0; h < 2; ++h) {
      const uint8_t* codes = w[b].qs + 16 * h;
      const int8_t* xs = x.qs + 32 * (2 * b + h);
      int32_t sum = 0;
      for (int j = 0; j < 16; ++j)
        sum += kNf4LevelsInt[codes[j] >> 4] * xs[2 * j] + kNf4LevelsInt[codes[j] & 0x0F] * xs[2 * j + 1];
      acc += d * x.d[2 * b + h] * float(sum);
    }
  }
  return acc;
}

void levels_q4_k(const BlockQ4_K& b, KQuantLevels& out) {
  const K4Scales k4 = unpack_k4_scales(b.scales);
  for (int c = 0; c < 4; ++c) {
    for (int e = 0; e < 32; ++e) {
      out.q[64 * c + e] = b.qs[32 * c + e] & 0x0F;
      out.q[64 * c + 32 + e] = b.qs[32 * c + e] >> 4;
    }
  }
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 16; ++l) out.scales[s][l] = int16_t((k4.scales >> (8 * s)) & 0xFF);
    out.mins[2 * s] = out.mins[2 * s + 1] = int16_t((k4.mins >> (8 * s)) & 0xFF);
  }
  out.d = half(b.d);
  out.dmin = half(b.dmin);
}

void levels_q5_k(const BlockQ5_K& b, KQuantLevels& out) {
  const K4Scales k4 = unpack_k4_scales(b.scales);
  for (int c = 0; c < 4; ++c) {
    for (int e = 0; e < 32; ++e) {
      out.q[64 * c + e] = uint8_t((b.qs[32 * c + e] & 0x0F) | (((b.qh[e] >> (2 * c)) & 1) << 4));
      out.q[64 * c + 32 + e] = uint8_t((b.qs[32 * c + e] >> 4) | (((b.qh[e] >> (2 * c + 1)) & 1) << 4));
    }
  }
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 16; ++l) out.scales[s][l] = int16_t((k4.scales >> (8 * s)) & 0xFF);
    out.mins[2 * s] = out.mins[2 * s + 1] = int16_t((k4.mins >> (8 * s)) & 0xFF);
  }
  out.d = half(b.d);
  out.dmin = half(b.dmin);
}

void levels_q6_k(const BlockQ6_K& b, KQuantLevels& out) {
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    uint8_t* q = out.q + 128 * n;
    for (int e = 0; e < 32; ++e) {
      q[e] = uint8_t((ql[e] & 0x0F) | ((qh[e] & 3) << 4));
      q[e + 32] = uint8_t((ql[e + 32] & 0x0F) | (((qh[e] >> 2) & 3) << 4));
      q[e + 64] = uint8_t((ql[e] >> 4) | (((qh[e] >> 4) & 3) << 4));
      q[e + 96] = uint8_t((ql[e + 32] >> 4) | (((qh[e] >> 6) & 3) << 4));
    }
  }
  for (int g = 0; g < 16; ++g) {
    for (int l = 0; l < 8; ++l) out.scales[g / 2][8 * (g % 2) + l] = b.scales[g];
    out.mins[g] = int16_t(32 * b.scales[g]);
  }
  out.d = out.dmin = half(b.d);
}

// K-quants: a super-block's sums are integers; its scaled sum, and for Q4_K and Q5_K its scaled mins, are then
// added by one fused multiply-add each (Q6_K's offset of 32 is subtracted in integers).
template <class Block, void (*Levels)(const Block&, KQuantLevels&)>
float dot_row_k(const Block* w, const uint8_t* xq, int64_t cols) {
  const auto* x = reinterpret_cast<const BlockQ8_K*>(xq);
  const int64_t nb = cols / kQK;
  float acc = 0;
  KQuantLevels lv;
  for (int64_t b = 0; b < nb; ++b) {
    Levels(w[b], lv);
    int32_t sum = 0, sum_mins = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t group = 0;
      for (int e = 16 * g; e < 16 * g + 16; ++e) group += int32_t(lv.q[e]) * x[b].qs[e];
      sum += lv.scales[g / 2][8 * (g % 2)] * group;
      sum_mins += lv.mins[g] * x[b].bsums[g];
    }
    if constexpr (std::is_same_v<Block, BlockQ6_K>) {
      acc = std::fma(lv.d * x[b].d, float(sum - sum_mins), acc);
    } else {
      acc = std::fma(lv.d * x[b].d, float(sum), acc);
      acc = std::fma(-(lv.dmin * x[b].d), float(sum_mins), acc);
    }
  }
  return acc;
}

template <class Block, float (*DotRow)(const Block*, const uint8_t*, int64_t)>
void rows(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
          int64_t y_stride) {
  const size_t w_row_bytes = row_bytes(w.dtype, w.cols);
  const size_t x_row_bytes = fast_activation_row_bytes(w.dtype, w.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto* wr = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w.data) + size_t(r) * w_row_bytes);
    for (int64_t i = 0; i < m; ++i)
      y[i * y_stride + r] = DotRow(wr, static_cast<const uint8_t*>(xq) + size_t(i) * x_row_bytes, w.cols);
  }
}

// Panels (kernels/x16_panels.h): each row taken back to its row type's blocks, then the same products.
template <class Block, float (*DotRow)(const Block*, const uint8_t*, int64_t)>
void rows_x16(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
              int64_t y_stride) {
  const size_t x_row_bytes = fast_activation_row_bytes(w.dtype, w.cols);
  std::vector<Block> row(size_t(w.cols / block_elements(w.dtype)));
  for (int64_t r = row_begin; r < row_end; ++r) {
    unpack_x16_row(w.dtype, w.data, w.cols, r, row.data());
    for (int64_t i = 0; i < m; ++i)
      y[i * y_stride + r] = DotRow(row.data(), static_cast<const uint8_t*>(xq) + size_t(i) * x_row_bytes, w.cols);
  }
}

}  // namespace

void quant_matmul_rows_scalar(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin,
                              int64_t row_end, float* y, int64_t y_stride) {
  switch (w.dtype) {
    case DType::Q8_0:
      return rows<BlockQ8_0, dot_row_blocks<BlockQ8_0, values_q8_0>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0:
      return rows<BlockQ4_0, dot_row_blocks<BlockQ4_0, values_q4_0>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0x16:
      return rows_x16<BlockQ4_0, dot_row_blocks<BlockQ4_0, values_q4_0>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_Kx16:
      return rows_x16<BlockQ4_K, dot_row_k<BlockQ4_K, levels_q4_k>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q5_Kx16:
      return rows_x16<BlockQ5_K, dot_row_k<BlockQ5_K, levels_q5_k>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q6_Kx16:
      return rows_x16<BlockQ6_K, dot_row_k<BlockQ6_K, levels_q6_k>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::NF4: return rows<BlockNF4, dot_row_nf4>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_K:
      return rows<BlockQ4_K, dot_row_k<BlockQ4_K, levels_q4_k>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q5_K:
      return rows<BlockQ5_K, dot_row_k<BlockQ5_K, levels_q5_k>>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q6_K:
      return rows<BlockQ6_K, dot_row_k<BlockQ6_K, levels_q6_k>>(xq, m, w, row_begin, row_end, y, y_stride);
    default: return;  // plain and Q8_K weights never reach here (quant_matmul rejects them)
  }
}

}  // namespace medlab
