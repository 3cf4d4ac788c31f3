// Fused attention in fast precision on AVX512-BF16: queries, keys, values and probabilities rounded to bf16,
// every product summed in f32 by vdpbf16ps, the softmax statistics kept in f32.
//
// The queries of a call lie across the lanes (16 rows to a register), so a block's keys need no transposing:
// scores come out one key to a register, 16 rows at once, for tiles of 32 rows x 8 keys, and the softmax
// maximum and sum are vertical operations over the keys. The probabilities of two keys form a bf16 pair per
// row, which meets the two keys' values paired the same way, in tiles of 32 rows x 8 dims; the outputs stay
// across the lanes until the end of the call.
//
// A row's arithmetic is fixed by its own range, as in the other versions: key blocks start at multiples of
// 64, keys outside the row's range score -inf and weigh exactly 0, and a block that the row does not see
// leaves its statistics and output unchanged (a correction of exactly 1 and products of 0).
//
// The amx set's version takes AMX-BF16 tiles for both products instead (the softmax steps are the same):
// scores as 16 keys x 16 rows per tile, from the keys' rows against the queries' pairs over chunks of 32
// dims, and outputs as 16 dims x 16 rows, from the values by dim against the probabilities' pairs over the
// block's two halves of 32 keys. Its sums are grouped as AMX groups them (bf16_matmul.h), so its bits are
// its own; the halves are fixed positions, so they still depend on nothing but the row.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/attention.h"
#include "kernels/bf16_matmul.h"
#include "kernels/cpu_features.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16"))), \
                             apply_to = function)
#endif

namespace medlab {
namespace {

constexpr int64_t kBlock = 64;  // keys per block
constexpr int kTileRows = 32;   // query rows per tile: two registers of lanes
constexpr int kTileKeys = 8;    // keys per score tile

// How far a block's maximum score may pass a row's reference (its maximum as last raised) before the reference is
// raised: a raise rescales the row's outputs, and probabilities up to e^8 lose nothing in bf16 or in the f32 sums.
constexpr float kLazyMax = 8.0f;

// e^x for x <= kLazyMax (and -inf), good to about 1e-5 relative (the result is rounded to bf16 next, whose steps
// are 2^-8): 2^n 2^f with n = round(x log2 e), |f| <= 1/2, and 2^f by its Taylor series to degree 4. Inputs below
// the smallest normal result give 0; e^0 is exactly 1.
inline __m512 exp_bounded(__m512 x) {
  const __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(9.61812911e-3f);
  for (const float c : {5.55041087e-2f, 2.40226507e-1f, 6.93147181e-1f, 1.0f}) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  return _mm512_maskz_scalef_ps(normal, p, n);
}

// Two registers of 16 floats, a and b, to the bf16 pairs (a[l], b[l]) in the 32-bit lanes l.
inline __m512i interleave_bf16(__m512 a, __m512 b) {
  // vcvtne2ps2bf16 puts b's words above a's; word 2l takes a's word l and word 2l + 1 b's.
  const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(pairs, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

// A mask of the first n of 16 lanes (none when n <= 0).
inline __mmask16 first_lanes(int64_t n) { return __mmask16(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1); }

// The bf16 pairs of n floats in their own order (n even): pair s holds x[2s] and x[2s + 1].
void to_pairs(const float* x, int64_t n, uint32_t* pairs) {
  for (int64_t c = 0; c < n; c += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(n - c), x + c);
    const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(n - c - 16), x + c + 16);
    _mm512_mask_storeu_epi32(pairs + c / 2, first_lanes((n - c) / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

struct Scratch {
  std::vector<uint32_t> queries;  // pair s of row r at [s * lanes + r], lanes = rows rounded up to 16
  std::vector<uint32_t> keys;     // pair s of block key j at [j * key_stride + s]
  std::vector<uint32_t> values;   // (value 2t, value 2t + 1) at dim d at [t * value_stride + d]
  std::vector<uint32_t> values_by_dim;  // the same pair at [d * kBlock / 2 + t] (AMX)
  std::vector<float> scores;      // block key j, tile lane l at [j * kTileRows + l]
  std::vector<float> outputs;     // dim d of row r at [d * lanes + r], before the division by the sum
  std::vector<uint32_t> probs;    // (p of key 2t, p of key 2t + 1) of tile lane l at [t * kTileRows + l]
  std::vector<float> max, sum;    // per row
  std::vector<int32_t> first, last;  // a tile's ranges relative to the block, clamped to -1..kBlock
};

// How a tile's dot products become scores: scaled, softcapped, and -inf outside each lane's range (unless every
// lane sees every key of the block); with the maximum score of each lane so far in the block.
struct ScoreRule {
  __m512 scale;
  float softcap;
  bool masked;
  __m512i first[2], last[2];  // per register of lanes, relative to the block
  __m512 max[2];
};

// Scores of key j for the tile's 16 rows of register v from their dot products, through the rule, into
// scores[j][v * 16 + l].
inline void apply_rule(__m512 dots, int64_t j, int v, ScoreRule& rule, float* scores) {
  __m512 x = _mm512_mul_ps(dots, rule.scale);
  if (rule.softcap > 0) {
    alignas(64) float capped[16];
    _mm512_store_ps(capped, x);
    for (float& c : capped) c = std::tanh(c / rule.softcap) * rule.softcap;
    x = _mm512_load_ps(capped);
  }
  if (rule.masked) {
    const __m512i index = _mm512_set1_epi32(int32_t(j));
    const __mmask16 outside =
        _mm512_cmpgt_epi32_mask(rule.first[v], index) | _mm512_cmpgt_epi32_mask(index, rule.last[v]);
    x = _mm512_mask_blend_ps(outside, x, _mm512_set1_ps(-INFINITY));
  }
  _mm512_storeu_ps(scores + j * kTileRows + v * 16, x);
  rule.max[v] = _mm512_max_ps(rule.max[v], x);
}

// scores[j][l] for the tile's QV * 16 rows and the 8 keys from j0: q[l] . key j, then the rule.
template <int QV>
void score_tile(const uint32_t* queries, int64_t lanes, const uint32_t* keys, int64_t key_stride, int64_t pairs,
                int64_t j0, ScoreRule& rule, float* scores) {
  __m512 acc[QV][kTileKeys];
  #pragma GCC unroll 8
  for (int k = 0; k < kTileKeys; ++k)
    #pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) acc[v][k] = _mm512_setzero_ps();
  const uint32_t* key = keys + j0 * key_stride;
  for (int64_t s = 0; s < pairs; ++s) {
    __m512bh q[QV];
    #pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) q[v] = (__m512bh)_mm512_loadu_si512(queries + s * lanes + v * 16);
    #pragma GCC unroll 8
    for (int k = 0; k < kTileKeys; ++k) {
      const __m512bh kk = (__m512bh)_mm512_set1_epi32(int(key[k * key_stride + s]));
      #pragma GCC unroll 2
      for (int v = 0; v < QV; ++v) acc[v][k] = _mm512_dpbf16_ps(acc[v][k], q[v], kk);
    }
  }
  #pragma GCC unroll 8
  for (int k = 0; k < kTileKeys; ++k)
    #pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) apply_rule(acc[v][k], j0 + k, v, rule, scores);
}

// outputs[d][l] = outputs[d][l] * correction[l] + the sum over key pairs t0..t1 - 1 of lane l's probability
// pair times the value pair at dim d, for dims d0..d0 + 7 and the tile's QV * 16 lanes.
template <int QV>
void value_tile(float* outputs, int64_t lanes, const uint32_t* probs, const __m512* correction, const uint32_t* values,
                int64_t value_stride, int64_t d0, int64_t t0, int64_t t1) {
  __m512 acc[QV][8];
  #pragma GCC unroll 8
  for (int e = 0; e < 8; ++e)
    #pragma GCC unroll 2
    for (int v = 0; v < QV; ++v)
      acc[v][e] = _mm512_mul_ps(_mm512_loadu_ps(outputs + (d0 + e) * lanes + v * 16), correction[v]);
  for (int64_t t = t0; t < t1; ++t) {
    __m512bh p[QV];
    #pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) p[v] = (__m512bh)_mm512_loadu_si512(probs + t * kTileRows + v * 16);
    #pragma GCC unroll 8
    for (int e = 0; e < 8; ++e) {
      const __m512bh value = (__m512bh)_mm512_set1_epi32(int(values[t * value_stride + d0 + e]));
      #pragma GCC unroll 2
      for (int v = 0; v < QV; ++v) acc[v][e] = _mm512_dpbf16_ps(acc[v][e], p[v], value);
    }
  }
  #pragma GCC unroll 8
  for (int e = 0; e < 8; ++e)
    #pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) _mm512_storeu_ps(outputs + (d0 + e) * lanes + v * 16, acc[v][e]);
}

// AMX: the scores of the 32 keys from j (two tiles of 16) for the V registers of 16 rows from the tile's first,
// their dot products over chunks of 32 dims (zeros past head_dim on both sides), then the rule. The 2 x V
// products of a chunk are independent, so they overlap, and each tile load serves two of them.
template <int V>
void score_tiles_amx(const uint32_t* queries, int64_t lanes, const uint32_t* keys, int64_t key_stride, int64_t j,
                     ScoreRule& rule, float* scores) {
  const int64_t key_bytes = key_stride * 4, lane_bytes = lanes * 4;
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (V == 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t c = 0; c < key_stride; c += 16) {
    _tile_loadd(4, keys + j * key_stride + c, key_bytes);
    _tile_loadd(5, keys + (j + 16) * key_stride + c, key_bytes);
    _tile_loadd(6, queries + c * lanes, lane_bytes);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 5, 6);
    if constexpr (V == 2) {
      _tile_loadd(7, queries + c * lanes + 16, lane_bytes);
      _tile_dpbf16ps(2, 4, 7);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, scores + j * kTileRows, kTileRows * 4);
  _tile_stored(1, scores + (j + 16) * kTileRows, kTileRows * 4);
  if constexpr (V == 2) {
    _tile_stored(2, scores + j * kTileRows + 16, kTileRows * 4);
    _tile_stored(3, scores + (j + 16) * kTileRows + 16, kTileRows * 4);
  }
  for (int64_t k = j; k < j + 32; ++k)
    for (int v = 0; v < V; ++v) apply_rule(_mm512_loadu_ps(scores + k * kTileRows + v * 16), k, v, rule, scores);
}

// AMX: outputs[d][l] for the D chunks of 16 dims from d0 and the V registers of 16 lanes from the tile's first
// (already times the correction) plus the products of the probability pairs and value pairs of keys k0..k1 - 1,
// a half block of 32 per product; as with the scores, 2 x 2 independent products share their tile loads.
template <int V, int D>
void value_tiles_amx(float* outputs, int64_t lanes, const uint32_t* probs, const uint32_t* values_by_dim, int64_t d0,
                     int64_t k0, int64_t k1) {
  const int64_t lane_bytes = lanes * 4;
  float* out = outputs + d0 * lanes;
  _tile_loadd(0, out, lane_bytes);
  if constexpr (D == 2) _tile_loadd(1, out + 16 * lanes, lane_bytes);
  if constexpr (V == 2) _tile_loadd(2, out + 16, lane_bytes);
  if constexpr (V == 2 && D == 2) _tile_loadd(3, out + 16 * lanes + 16, lane_bytes);
  for (int64_t k = k0; k < k1; k += 32) {
    _tile_loadd(4, values_by_dim + d0 * (kBlock / 2) + k / 2, kBlock / 2 * 4);
    _tile_loadd(6, probs + k / 2 * kTileRows, kTileRows * 4);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (D == 2) {
      _tile_loadd(5, values_by_dim + (d0 + 16) * (kBlock / 2) + k / 2, kBlock / 2 * 4);
      _tile_dpbf16ps(1, 5, 6);
    }
    if constexpr (V == 2) {
      _tile_loadd(7, probs + k / 2 * kTileRows + 16, kTileRows * 4);
      _tile_dpbf16ps(2, 4, 7);
    }
    if constexpr (V == 2 && D == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, lane_bytes);
  if constexpr (D == 2) _tile_stored(1, out + 16 * lanes, lane_bytes);
  if constexpr (V == 2) _tile_stored(2, out + 16, lane_bytes);
  if constexpr (V == 2 && D == 2) _tile_stored(3, out + 16 * lanes + 16, lane_bytes);
}

template <int V>
void value_block_amx(float* outputs, int64_t lanes, const uint32_t* probs, const uint32_t* values_by_dim,
                     int64_t value_stride, int64_t k0, int64_t k1) {
  int64_t d0 = 0;
  for (; d0 + 32 <= value_stride; d0 += 32) value_tiles_amx<V, 2>(outputs, lanes, probs, values_by_dim, d0, k0, k1);
  if (d0 < value_stride) value_tiles_amx<V, 1>(outputs, lanes, probs, values_by_dim, d0, k0, k1);
}

template <bool kAmx>
void attention_bf16_impl(const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape) {
  const int64_t hd = shape.head_dim, n = rows.n, pairs = hd / 2;
  if (n == 0) return;
  const int64_t lanes = (n + 15) / 16 * 16;
  const int64_t key_stride = (hd + 31) / 32 * 16, value_stride = (hd + 15) / 16 * 16;
  static thread_local Scratch s;  // only grows
  auto grow = [](auto& v, int64_t size) {
    if (v.size() < size_t(size)) v.resize(size_t(size));
  };
  grow(s.queries, key_stride * lanes);
  grow(s.keys, kBlock * key_stride);
  grow(s.values, kBlock / 2 * value_stride);
  if constexpr (kAmx) grow(s.values_by_dim, kBlock / 2 * value_stride);
  grow(s.scores, kBlock * kTileRows);
  grow(s.outputs, value_stride * lanes);
  grow(s.probs, kBlock / 2 * kTileRows);
  grow(s.max, lanes);
  grow(s.sum, lanes);
  grow(s.first, kTileRows);
  grow(s.last, kTileRows);

  // Queries across the lanes; the padding lanes (and pairs past head_dim) hold zeros and see every key, and
  // are never written out.
  int64_t lo = rows.first[0], hi = rows.last[0];
  for (int64_t r = 0; r < lanes; ++r) {
    for (int64_t p = 0; p < key_stride; ++p) {
      const bool real = r < n && p < pairs;
      const uint32_t low = real ? bf16_activation(rows.q[r][2 * p]) : 0;
      const uint32_t high = real ? bf16_activation(rows.q[r][2 * p + 1]) : 0;
      s.queries[size_t(p * lanes + r)] = low | high << 16;
    }
    s.max[size_t(r)] = -INFINITY;
    s.sum[size_t(r)] = 0;
    if (r >= n) continue;
    lo = std::min(lo, rows.first[r]);
    hi = std::max(hi, rows.last[r]);
  }
  std::fill_n(s.outputs.begin(), value_stride * lanes, 0.0f);
  if constexpr (kAmx) {
    static const AmxTileConfig config = AmxTileConfig().shape(0, 7, 16, 64);
    _tile_loadconfig(&config);
  }

  const __m512 scale = _mm512_set1_ps(shape.scale), minus_inf = _mm512_set1_ps(-INFINITY);
  const __m512bh ones = (__m512bh)_mm512_set1_epi32(0x3f803f80);  // a pair of bf16 1.0
  const float* value_rows_of_block[kBlock];
  for (int64_t b0 = lo / kBlock * kBlock; b0 <= hi; b0 += kBlock) {
    // Keys j0..j1 - 1 (from b0, groups of 8, or halves of the block for AMX) hold all that any row sees; the
    // others point at seen keys.
    constexpr int64_t kGroup = kAmx ? kBlock / 2 : 8;
    const int64_t j0 = (std::max(b0, lo) - b0) / kGroup * kGroup;
    const int64_t j1 = (std::min(b0 + kBlock - 1, hi) - b0) / kGroup * kGroup + kGroup;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t slot = (b0 + std::clamp(j, lo - b0, hi - b0)) % kv.capacity;
      uint32_t* key = s.keys.data() + j * key_stride;
      to_pairs(kv.k + slot * kv.row_stride, hd, key);
      std::fill(key + pairs, key + key_stride, 0u);
      value_rows_of_block[j] = kv.v + slot * kv.row_stride;
    }
    for (int64_t j = j0; j < j1; j += 2)
      for (int64_t d = 0; d < hd; d += 16) {
        const __mmask16 real = first_lanes(hd - d);
        const __m512 a = _mm512_maskz_loadu_ps(real, value_rows_of_block[j] + d);
        const __m512 b = _mm512_maskz_loadu_ps(real, value_rows_of_block[j + 1] + d);
        _mm512_storeu_si512(s.values.data() + j / 2 * value_stride + d, interleave_bf16(a, b));
      }
    if constexpr (kAmx) {  // the value pairs by dim: a gather takes 16 pairs of one dim
      const __m512i pair_rows = _mm512_mullo_epi32(
          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(int(value_stride)));
      for (int64_t t = j0 / 2; t < j1 / 2; t += 16)
        for (int64_t d = 0; d < value_stride; ++d)
          _mm512_storeu_si512(s.values_by_dim.data() + d * (kBlock / 2) + t,
                              _mm512_i32gather_epi32(pair_rows, s.values.data() + t * value_stride + d, 4));
    }

    for (int64_t r0 = 0; r0 < lanes; r0 += kTileRows) {
      const int64_t tile_lanes = std::min<int64_t>(kTileRows, lanes - r0);
      const int64_t tile_rows = std::min<int64_t>(tile_lanes, n - r0);
      // Each lane's range within the block; the tile is skipped when no row sees the block.
      bool seen = false, whole = true;
      for (int64_t l = 0; l < tile_lanes; ++l) {
        const bool real = l < tile_rows;
        const int64_t first = real ? rows.first[r0 + l] - b0 : 0, last = real ? rows.last[r0 + l] - b0 : kBlock - 1;
        s.first[size_t(l)] = int32_t(std::clamp<int64_t>(first, -1, kBlock));
        s.last[size_t(l)] = int32_t(std::clamp<int64_t>(last, -1, kBlock));
        seen |= real && first < kBlock && last >= 0;
        whole &= first <= j0 && last >= j1 - 1;
      }
      if (!seen) continue;

      ScoreRule rule;
      rule.scale = scale;
      rule.softcap = shape.softcap;
      rule.masked = !whole;
      for (int64_t v = 0; v < tile_lanes / 16; ++v) {
        rule.max[v] = minus_inf;
        rule.first[v] = _mm512_loadu_si512(s.first.data() + v * 16);
        rule.last[v] = _mm512_loadu_si512(s.last.data() + v * 16);
      }
      const uint32_t* queries = s.queries.data() + r0;
      if constexpr (kAmx) {
        for (int64_t j = j0; j < j1; j += 32) {
          if (tile_lanes == 32) score_tiles_amx<2>(queries, lanes, s.keys.data(), key_stride, j, rule, s.scores.data());
          else score_tiles_amx<1>(queries, lanes, s.keys.data(), key_stride, j, rule, s.scores.data());
        }
      } else {
        for (int64_t j = j0; j < j1; j += kTileKeys) {
          if (tile_lanes == 32) score_tile<2>(queries, lanes, s.keys.data(), key_stride, pairs, j, rule, s.scores.data());
          else score_tile<1>(queries, lanes, s.keys.data(), key_stride, pairs, j, rule, s.scores.data());
        }
      }

      // Per register of 16 lanes: the probabilities as bf16 pairs, their sum, and the statistics' update.
      alignas(64) float correction[kTileRows] = {};
      for (int64_t v = 0; v < tile_lanes / 16; ++v) {
        const float* scores = s.scores.data() + v * 16;
        const __m512 block_max = rule.max[v];
        const __m512 old_max = _mm512_loadu_ps(s.max.data() + r0 + v * 16);
        const __mmask16 raise =
            _mm512_cmp_ps_mask(block_max, _mm512_add_ps(old_max, _mm512_set1_ps(kLazyMax)), _CMP_GT_OQ);
        const __m512 new_max = _mm512_mask_max_ps(old_max, raise, old_max, block_max);
        // A row that has seen no key yet subtracts 0, so that -inf - -inf never makes a NaN.
        const __m512 m = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(new_max, minus_inf, _CMP_EQ_OQ), new_max,
                                              _mm512_setzero_ps());
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = j0; j < j1; j += 2) {
          const __m512 p0 = exp_bounded(_mm512_sub_ps(_mm512_loadu_ps(scores + j * kTileRows), m));
          const __m512 p1 = exp_bounded(_mm512_sub_ps(_mm512_loadu_ps(scores + (j + 1) * kTileRows), m));
          const __m512i pair = interleave_bf16(p0, p1);
          _mm512_storeu_si512(s.probs.data() + j / 2 * kTileRows + v * 16, pair);
          // The sum is of the rounded probabilities, the weights the values actually get.
          sum = _mm512_dpbf16_ps(sum, (__m512bh)pair, ones);
        }
        const __m512 c = exp_bounded(_mm512_sub_ps(old_max, m));
        _mm512_store_ps(correction + v * 16, c);
        _mm512_storeu_ps(s.max.data() + r0 + v * 16, new_max);
        float* row_sums = s.sum.data() + r0 + v * 16;
        _mm512_storeu_ps(row_sums, _mm512_fmadd_ps(_mm512_loadu_ps(row_sums), c, sum));
      }

      // outputs = outputs * correction + P V, 8 dims at a time (32 for AMX).
      const __m512 tile_correction[2] = {_mm512_load_ps(correction), _mm512_load_ps(correction + 16)};
      if constexpr (kAmx) {
        for (int v = 0; v < tile_lanes / 16; ++v) {
          // Once a row's maximum settles its correction is exactly 1, and x * 1 is x: nothing to do.
          if (_mm512_cmpneq_ps_mask(tile_correction[v], _mm512_set1_ps(1.0f)) == 0) continue;
          for (int64_t d = 0; d < hd; ++d) {
            float* out = s.outputs.data() + d * lanes + r0 + v * 16;
            _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_loadu_ps(out), tile_correction[v]));
          }
        }
        if (tile_lanes == 32)
          value_block_amx<2>(s.outputs.data() + r0, lanes, s.probs.data(), s.values_by_dim.data(), value_stride, j0, j1);
        else
          value_block_amx<1>(s.outputs.data() + r0, lanes, s.probs.data(), s.values_by_dim.data(), value_stride, j0, j1);
        continue;
      }
      for (int64_t d0 = 0; d0 < hd; d0 += 8) {
        if (tile_lanes == 32)
          value_tile<2>(s.outputs.data() + r0, lanes, s.probs.data(), tile_correction, s.values.data(), value_stride,
                        d0, j0 / 2, j1 / 2);
        else
          value_tile<1>(s.outputs.data() + r0, lanes, s.probs.data(), tile_correction, s.values.data(), value_stride,
                        d0, j0 / 2, j1 / 2);
      }
    }
  }
  if constexpr (kAmx) _tile_release();
  for (int64_t r = 0; r < n; ++r) {
    const float inv = 1.0f / s.sum[size_t(r)];
    for (int64_t d = 0; d < hd; ++d) rows.out[r][d] = s.outputs[size_t(d * lanes + r)] * inv;
  }
}

}  // namespace

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options

AttentionFn attention_avx512_bf16() {
  const bool usable = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return usable ? &attention_bf16_impl<false> : nullptr;
}

AttentionFn attention_amx_bf16() { return attention_avx512_bf16() && amx_usable() ? &attention_bf16_impl<true> : nullptr; }

}  // namespace medlab
