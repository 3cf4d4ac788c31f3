// Quantized-weight kernels for AVX-512 CPUs with VNNI: Q8_0 and Q4_0 panels (quant_panels.h) whose block
// products take vpdpbusd, two panels per 512-bit vector in prefill and 256-bit vectors in decode. They give
// the same bits as every other set (quant_matmul.h's order). The K-quants and NF4 use the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/quant_matmul.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#ifdef __clang__  // clang ignores GCC target pragmas; this is its way to say the same
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#endif

namespace medlab {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void prefetch_ahead(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0); }

#include "kernels/quant_panels.h"  // inside the target region and this file's namespace: compiled with VNNI

}  // namespace

void quant_matmul_rows_avx512_vnni(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin,
                                   int64_t row_end, float* y, int64_t y_stride) {
  switch (w.dtype) {
    case DType::Q8_0: return panel_rows<DType::Q8_0, true>(xq, m, w, row_begin, row_end, y, y_stride);
    case DType::Q4_0: return panel_rows<DType::Q4_0, true>(xq, m, w, row_begin, row_end, y, y_stride);
    default: return quant_matmul_rows_avx2(xq, m, w, row_begin, row_end, y, y_stride);
  }
}

}  // namespace medlab

#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options
