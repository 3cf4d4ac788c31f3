// The scalar reference of fused attention, and the choice of version.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace medlab {

void attention_scalar(const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape) {
  constexpr int64_t kBlock = 64;
  const int64_t hd = shape.head_dim;
  float scores[kBlock];
  for (int64_t r = 0; r < rows.n; ++r) {
    const float* q = rows.q[r];
    float* out = rows.out[r];
    std::fill(out, out + hd, 0.0f);
    float max = -INFINITY, sum = 0;
    for (int64_t b0 = rows.first[r] / kBlock * kBlock; b0 <= rows.last[r]; b0 += kBlock) {
      const int64_t j0 = std::max(b0, rows.first[r]), j1 = std::min(b0 + kBlock - 1, rows.last[r]);
      float block_max = -INFINITY;
      for (int64_t j = j0; j <= j1; ++j) {
        const float* key = kv.k + (j % kv.capacity) * kv.row_stride;
        float dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += q[d] * key[d];
        float s = dot * shape.scale;
        if (shape.softcap > 0) s = std::tanh(s / shape.softcap) * shape.softcap;
        scores[j - j0] = s;
        block_max = std::max(block_max, s);
      }
      const float new_max = std::max(max, block_max);
      const float correction = std::exp(max - new_max);
      max = new_max;
      sum *= correction;
      for (int64_t d = 0; d < hd; ++d) out[d] *= correction;
      for (int64_t j = j0; j <= j1; ++j) {
        const float p = std::exp(scores[j - j0] - max);
        sum += p;
        const float* value = kv.v + (j % kv.capacity) * kv.row_stride;
        for (int64_t d = 0; d < hd; ++d) out[d] += p * value[d];
      }
    }
    const float inv = 1.0f / sum;
    for (int64_t d = 0; d < hd; ++d) out[d] *= inv;
  }
}

void attention(const KernelTable& kernels, const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape,
               Precision precision) {
  static const AttentionFn vector = attention_avx2();
  static const AttentionFn bf16 = attention_avx512_bf16(), amx = attention_amx_bf16();
  if (precision == Precision::Fast && kernels.isa == Isa::Amx && amx && shape.head_dim % 8 == 0)
    return amx(rows, kv, shape);
  if (precision == Precision::Fast && kernels.isa >= Isa::Avx512 && bf16 && shape.head_dim % 8 == 0)
    return bf16(rows, kv, shape);
  if (kernels.isa != Isa::Scalar && vector && shape.head_dim % 8 == 0) return vector(rows, kv, shape);
  attention_scalar(rows, kv, shape);
}

}  // namespace medlab
