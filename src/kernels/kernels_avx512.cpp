// Kernels for AVX-512 (F, BW, VL). Matrix multiply works on register tiles of 4 input rows x 4 weight rows
// over weights widened to f32 once per block, or 1 x 8 straight from the stored weights (decode).
//
// Each output keeps one 16-lane accumulator that walks K in order, then a fixed horizontal sum, so an
// output's bits do not depend on the tile it was computed in, on m, or on the thread split.
#include <immintrin.h>

#include <algorithm>

#include "kernels/bf16_matmul.h"
#include "kernels/cpu_features.h"
#include "kernels/fast_elementwise.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma,f16c")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c"))), apply_to = function)
#endif

#include "kernels/blocked_matmul.h"  // inside the target region: its loops are compiled for this ISA

namespace medlab {
namespace {

template <DType D>
inline __m512 load16(const void* base, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  } else if constexpr (D == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType D>
inline __m512 load_tail(const void* base, int64_t i, __mmask16 mask) {
  if constexpr (D == DType::F32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(base) + i);
  } else if constexpr (D == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i));
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// acc[j * MR + i] += x[i] . w[r0 + j] over columns [c0, c1), MR rows of x by NR weight rows; the
// accumulators live in registers for the whole range. kStream: the weights come from memory, once (decode);
// the next tile's rows are asked into L2 at this tile's pace, since the hardware prefetchers lose track of
// NR streams a row apart.
template <DType D, int MR, int NR, bool kStream>
void tile(const float* x, int64_t k, const void* w, int64_t r0, int64_t c0, int64_t c1, __m512* acc) {
  __m512 a[MR][NR];
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) a[i][j] = acc[j * MR + i];
  const size_t elem = D == DType::F32 ? 4 : 2;
  const void* wrow[NR];
  #pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) wrow[j] = static_cast<const uint8_t*>(w) + size_t(r0 + j) * size_t(k) * elem;

  const size_t next_tile = size_t(NR) * size_t(k) * elem;  // bytes from a row to its place in the next tile
  int64_t c = c0;
  for (; c + 16 <= c1; c += 16) {
    if constexpr (kStream)
      if (c * elem % 64 == 0)
        for (int j = 0; j < NR; ++j)
          _mm_prefetch(static_cast<const char*>(wrow[j]) + next_tile + size_t(c) * elem, _MM_HINT_T1);
    __m512 wv[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load16<D>(wrow[j], c);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * k + c);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) a[i][j] = _mm512_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
  if (c < c1) {
    const __mmask16 mask = __mmask16((1u << (c1 - c)) - 1);
    __m512 wv[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load_tail<D>(wrow[j], c, mask);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * k + c);
      #pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) a[i][j] = _mm512_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[j * MR + i] = a[i][j];
}

// Tile sizes for 32 zmm registers: 4x4 for prefill, 1x8 for decode; the cache shares assume 1 MiB of L2
// per core and a few MiB of L3.
struct Tile {
  using Vec = __m512;
  static constexpr int kWeightRows = 4, kDecodeRows = 8;
  static constexpr int64_t kL2Bytes = int64_t(1) << 20, kL3Bytes = int64_t(1) << 22;
  template <DType D, int MR, int NR, bool kStream>
  static void run(const float* x, int64_t k, const void* w, int64_t r0, int64_t c0, int64_t c1, __m512* acc) {
    tile<D, MR, NR, kStream>(x, k, w, r0, c0, c1, acc);
  }
  template <DType D>
  static void widen(const void* w, int64_t first, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, load16<D>(w, first + i));
    if (i < n) {
      const __mmask16 mask = __mmask16((1u << (n - i)) - 1);
      _mm512_mask_storeu_ps(out + i, mask, load_tail<D>(w, first + i, mask));
    }
  }
  static float sum(__m512 acc) { return _mm512_reduce_add_ps(acc); }
};

}  // namespace

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options

const KernelTable* avx512_kernels() {
  // Quantized weights: VNNI's dpbusd for Q8_0, Q4_0 and the 16-row panels where the CPU has it, otherwise the
  // AVX2 kernels; fast bf16: vdpbf16ps where the CPU has it, otherwise the AVX2 emulation (the same bits either way);
  // Fast's elementwise steps: the AVX2 versions (they are a small share of the time).
  static const KernelTable table{
      Isa::Avx512, &blocked::matmul_rows_any<Tile>, &dequantize_row_avx2,
      __builtin_cpu_supports("avx512vnni") ? &quant_matmul_rows_avx512_vnni : &quant_matmul_rows_avx2,
      &quantize_q8_row_avx2,
      __builtin_cpu_supports("avx512bf16") ? &bf16_matmul_rows_avx512_bf16 : &bf16_matmul_rows_avx2,
      &bf16_activations_avx2, &gelu_tanh_fast_avx2};
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vl");
  return supported ? &table : nullptr;
}

// A set of its own rather than a choice inside the AVX-512 one, so that on an AMX machine the tests compare
// both against the scalar reference and `--isa avx512` measures what AMX adds.
const KernelTable* amx_kernels() {
  static const KernelTable* table = []() -> const KernelTable* {
    const KernelTable* avx512 = avx512_kernels();
    if (!avx512 || !__builtin_cpu_supports("avx512vnni") || !amx_usable()) return nullptr;
    static KernelTable amx = *avx512;
    amx.isa = Isa::Amx;
    amx.quant_matmul_rows = &quant_matmul_rows_amx;
    amx.bf16_matmul_rows = &bf16_matmul_rows_amx;
    return &amx;
  }();
  return table;
}

}  // namespace medlab
