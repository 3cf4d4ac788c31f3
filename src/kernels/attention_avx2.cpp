// Fused attention for AVX2 with FMA. Per block of 64 key positions: the keys are transposed once so that
// scores come out 8 keys to a register (3 query rows x 32 keys per tile), the softmax statistics are
// updated with a vector exp, and the probabilities meet the values in tiles of 4 rows x 24 dims.
//
// A row's arithmetic is fixed by its own range: keys outside it score -inf and weigh exactly 0, a row that
// sees none of a block skips it, and every sum runs in key order within its lane.
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#endif

#include "kernels/exp_avx2.h"  // inside the target region

namespace medlab {
namespace {

constexpr int64_t kBlock = 64;

inline float horizontal_sum(__m256 v) {
  const __m128 pairs = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quads = _mm_add_ps(pairs, _mm_movehl_ps(pairs, pairs));
  return _mm_cvtss_f32(_mm_add_ss(quads, _mm_movehdup_ps(quads)));
}

inline float horizontal_max(__m256 v) {
  const __m128 pairs = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quads = _mm_max_ps(pairs, _mm_movehl_ps(pairs, pairs));
  return _mm_cvtss_f32(_mm_max_ss(quads, _mm_movehdup_ps(quads)));
}

// kt[d * kBlock + j] = rows[j][d] for 8 rows and 8 dims starting at d0.
inline void transpose8(const float* const* rows, int64_t d0, float* kt) {
  __m256 r[8], t[8];
  for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(rows[j] + d0);
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {
    r[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
    r[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
    r[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
    r[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(kt + (d0 + j) * kBlock, _mm256_permute2f128_ps(r[j], r[j + 4], 0x20));
    _mm256_storeu_ps(kt + (d0 + j + 4) * kBlock, _mm256_permute2f128_ps(r[j], r[j + 4], 0x31));
  }
}

// scores[i][j0 + j] = q[i] . key j for MR rows and the 32 keys from j0.
template <int MR>
void score_tile(const float* const* q, const float* kt, int64_t hd, int64_t j0, float* const* scores) {
  __m256 acc[MR][4];
  #pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    const float* row = kt + d * kBlock + j0;
    const __m256 k0 = _mm256_loadu_ps(row), k1 = _mm256_loadu_ps(row + 8), k2 = _mm256_loadu_ps(row + 16),
                 k3 = _mm256_loadu_ps(row + 24);
    #pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 qd = _mm256_broadcast_ss(q[i] + d);
      acc[i][0] = _mm256_fmadd_ps(qd, k0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(qd, k1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(qd, k2, acc[i][2]);
      acc[i][3] = _mm256_fmadd_ps(qd, k3, acc[i][3]);
    }
  }
  #pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) _mm256_storeu_ps(scores[i] + j0 + v * 8, acc[i][v]);
}

// out[i][d0 .. d0 + 8 NV) = out[i] * correction[i] + sum over keys j0..j1 of p[i][j] * value j.
template <int MR, int NV>
void value_tile(float* const* out, const float* const* p, const float* correction, const float* const* values,
                int64_t d0, int64_t j0, int64_t j1) {
  __m256 acc[MR][NV];
  #pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m256 c = _mm256_set1_ps(correction[i]);
    #pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_mul_ps(_mm256_loadu_ps(out[i] + d0 + v * 8), c);
  }
  for (int64_t j = j0; j <= j1; ++j) {
    __m256 val[NV];
    #pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) val[v] = _mm256_loadu_ps(values[j] + d0 + v * 8);
    #pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 pj = _mm256_broadcast_ss(p[i] + j);
      #pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(pj, val[v], acc[i][v]);
    }
  }
  #pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(out[i] + d0 + v * 8, acc[i][v]);
}

template <int MR>
void value_rows(float* const* out, const float* const* p, const float* correction, const float* const* values,
                int64_t hd, int64_t j0, int64_t j1) {
  int64_t d0 = 0;
  for (; d0 + 24 <= hd; d0 += 24) value_tile<MR, 3>(out, p, correction, values, d0, j0, j1);
  if (hd - d0 == 16) value_tile<MR, 2>(out, p, correction, values, d0, j0, j1);
  if (hd - d0 == 8) value_tile<MR, 1>(out, p, correction, values, d0, j0, j1);
}

template <class Fn>
void in_row_tiles(const int64_t* rows, int64_t n, int max_rows, Fn&& fn) {
  for (int64_t i = 0; i < n; i += max_rows) fn(rows + i, int(std::min<int64_t>(max_rows, n - i)));
}

struct Scratch {
  std::vector<float> kt, scores, max, sum, correction;
  std::vector<int64_t> active;
};

void attention_avx2_impl(const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape) {
  const int64_t hd = shape.head_dim, n = rows.n;
  if (n == 0) return;
  static thread_local Scratch s;  // only grows
  if (s.kt.size() < size_t(hd * kBlock)) s.kt.resize(size_t(hd * kBlock));
  if (s.max.size() < size_t(n)) {
    for (auto* v : {&s.max, &s.sum, &s.correction}) v->resize(size_t(n));
    s.scores.resize(size_t(n * kBlock));
    s.active.resize(size_t(n));
  }
  int64_t lo = rows.first[0], hi = rows.last[0];
  for (int64_t r = 0; r < n; ++r) {
    lo = std::min(lo, rows.first[r]);
    hi = std::max(hi, rows.last[r]);
    std::fill(rows.out[r], rows.out[r] + hd, 0.0f);
    s.max[size_t(r)] = -INFINITY;
    s.sum[size_t(r)] = 0;
  }
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), minus_inf = _mm256_set1_ps(-INFINITY);
  const __m256 scale = _mm256_set1_ps(shape.scale);
  const float* keys[kBlock];
  const float* values[kBlock];
  for (int64_t b0 = lo / kBlock * kBlock; b0 <= hi; b0 += kBlock) {
    // The rows that see part of this block, and the keys j0..j1 (from b0) that any of them sees.
    int64_t active = 0;
    for (int64_t r = 0; r < n; ++r)
      if (rows.first[r] < b0 + kBlock && rows.last[r] >= b0) s.active[size_t(active++)] = r;
    if (active == 0) continue;
    const int64_t j0 = std::max(b0, lo) - b0, j1 = std::min(b0 + kBlock - 1, hi) - b0;
    const int64_t g0 = j0 / 8 * 8, g1 = j1 / 8 * 8 + 8;  // the groups of 8 keys that hold them
    for (int64_t j = g0; j < g1; ++j) {
      const int64_t slot = (b0 + std::clamp(j, j0, j1)) % kv.capacity;
      keys[j] = kv.k + slot * kv.row_stride;
      values[j] = kv.v + slot * kv.row_stride;
    }
    for (int64_t j = g0; j < g1; j += 8)
      for (int64_t d0 = 0; d0 < hd; d0 += 8) transpose8(keys + j, d0, s.kt.data() + j);

    // Scores, masked to each row's own range, then the online softmax update of its statistics.
    in_row_tiles(s.active.data(), active, 3, [&](const int64_t* tile, int mr) {
      const float* q[3];
      float* scores[3];
      for (int i = 0; i < mr; ++i) {
        q[i] = rows.q[tile[i]];
        scores[i] = s.scores.data() + (&tile[i] - s.active.data()) * kBlock;
      }
      for (int64_t t0 = g0 / 32 * 32; t0 < g1; t0 += 32) {
        if (mr == 3) score_tile<3>(q, s.kt.data(), hd, t0, scores);
        else if (mr == 2) score_tile<2>(q, s.kt.data(), hd, t0, scores);
        else score_tile<1>(q, s.kt.data(), hd, t0, scores);
      }
    });
    for (int64_t a = 0; a < active; ++a) {
      const int64_t r = s.active[size_t(a)];
      float* scores = s.scores.data() + a * kBlock;
      const __m256 first = _mm256_set1_ps(float(rows.first[r] - b0)), last = _mm256_set1_ps(float(rows.last[r] - b0));
      __m256 block_max = minus_inf;
      for (int64_t j = g0; j < g1; j += 8) {
        __m256 x = _mm256_mul_ps(_mm256_loadu_ps(scores + j), scale);
        if (shape.softcap > 0) {
          alignas(32) float capped[8];
          _mm256_store_ps(capped, x);
          for (float& c : capped) c = std::tanh(c / shape.softcap) * shape.softcap;
          x = _mm256_load_ps(capped);
        }
        const __m256 index = _mm256_add_ps(_mm256_set1_ps(float(j)), lane);
        const __m256 outside =
            _mm256_or_ps(_mm256_cmp_ps(index, first, _CMP_LT_OQ), _mm256_cmp_ps(index, last, _CMP_GT_OQ));
        x = _mm256_blendv_ps(x, minus_inf, outside);
        _mm256_storeu_ps(scores + j, x);
        block_max = _mm256_max_ps(block_max, x);
      }
      const float old_max = s.max[size_t(r)], new_max = std::max(old_max, horizontal_max(block_max));
      const float correction = std::exp(old_max - new_max);
      const __m256 m = _mm256_set1_ps(new_max);
      __m256 sum = _mm256_setzero_ps();
      for (int64_t j = g0; j < g1; j += 8) {
        const __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(scores + j), m));
        _mm256_storeu_ps(scores + j, p);
        sum = _mm256_add_ps(sum, p);
      }
      s.max[size_t(r)] = new_max;
      s.sum[size_t(r)] = s.sum[size_t(r)] * correction + horizontal_sum(sum);
      s.correction[size_t(a)] = correction;
    }

    // out = out * correction + P V over the keys any row sees; the others' probabilities are exactly 0.
    in_row_tiles(s.active.data(), active, 4, [&](const int64_t* tile, int mr) {
      float* out[4];
      const float* p[4];
      float correction[4];
      for (int i = 0; i < mr; ++i) {
        const int64_t a = &tile[i] - s.active.data();
        out[i] = rows.out[tile[i]];
        p[i] = s.scores.data() + a * kBlock;
        correction[i] = s.correction[size_t(a)];
      }
      switch (mr) {
        case 4: return value_rows<4>(out, p, correction, values, hd, j0, j1);
        case 3: return value_rows<3>(out, p, correction, values, hd, j0, j1);
        case 2: return value_rows<2>(out, p, correction, values, hd, j0, j1);
        default: return value_rows<1>(out, p, correction, values, hd, j0, j1);
      }
    });
  }
  for (int64_t r = 0; r < n; ++r) {
    const float inv = 1.0f / s.sum[size_t(r)];
    for (int64_t d = 0; d < hd; ++d) rows.out[r][d] *= inv;
  }
}

}  // namespace

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options

AttentionFn attention_avx2() {
  unsigned eax, ebx, ecx, edx;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
  return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &attention_avx2_impl : nullptr;
}

}  // namespace medlab
