#include "kernels/kernels.h"

#include <cmath>

#include "core/error.h"
#include "kernels/bf16_matmul.h"
#include "kernels/quant_matmul.h"

namespace medlab {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Amx: return "amx";
  }
  return "?";
}

std::vector<const KernelTable*> available_kernels() {
  std::vector<const KernelTable*> tables{&scalar_kernels()};
  for (const KernelTable* t : {avx2_kernels(), avx512_kernels(), amx_kernels()})
    if (t) tables.push_back(t);
  return tables;
}

const KernelTable& best_kernels() {
  static const KernelTable& best = *available_kernels().back();
  return best;
}

const KernelTable& kernels_for(const std::string& name) {
  for (const KernelTable* t : available_kernels())
    if (name == isa_name(t->isa)) return *t;
  if (name == "avx2" || name == "avx512" || name == "amx") fail("isa: this CPU cannot run ", name, " kernels");
  fail("isa: unknown kernel set '", name, "' (expected scalar, avx2, avx512 or amx)");
}

namespace {

// Fast bf16: the activations rounded once per call, on the caller's threads, into scratch that only grows.
void bf16_matmul(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w,
                 float* y) {
  thread_local std::vector<uint16_t> xb;
  const int64_t n = m * w.cols;
  if (xb.size() < size_t(n)) xb.resize(size_t(n));
  uint16_t* xb_data = xb.data();
  pool.parallel_for(
      n, [&](int64_t begin, int64_t end) {
        k.bf16_activations(x + begin, xb_data + begin, end - begin);
      },
      4096);
  split_weight_rows(pool, m, w.rows,
                    [&](int64_t begin, int64_t end) { k.bf16_matmul_rows(xb_data, m, w, begin, end, y, w.rows); });
}

}  // namespace

void matmul(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w, float* y,
            Precision precision) {
  if (is_quantized(w.dtype)) return quant_matmul(k, pool, x, m, w, y, precision);
  if (w.dtype == DType::BF16 && precision == Precision::Fast) return bf16_matmul(k, pool, x, m, w, y);
  split_weight_rows(pool, m, w.rows,
                    [&](int64_t begin, int64_t end) { k.matmul_rows(x, m, w, begin, end, y, w.rows); });
}

namespace {

// The sum of term(i) for i < n in double, term i into partial sum i % 8 and the partials added pairwise at the
// end: eight independent chains of additions (which the compiler may run as one vector) instead of one, in an
// order fixed by n alone.
template <class Term>
double sum_by_eight(int64_t n, Term term) {
  double partial[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    #pragma GCC unroll 8
    for (int lane = 0; lane < 8; ++lane) partial[lane] += term(i + lane);
  }
  for (; i < n; ++i) partial[i % 8] += term(i);
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
}

}  // namespace

void rms_norm(const float* x, const float* scale, float* y, int64_t n, float eps) {
  const double sum_squares = sum_by_eight(n, [&](int64_t i) { return double(x[i]) * x[i]; });
  const float inv = float(1.0 / std::sqrt(sum_squares / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * scale[i];
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t n, float eps) {
  const double mean = sum_by_eight(n, [&](int64_t i) { return double(x[i]); }) / double(n);
  const double var = sum_by_eight(n, [&](int64_t i) { return (x[i] - mean) * (x[i] - mean); });
  const double inv = 1.0 / std::sqrt(var / double(n) + double(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = float((x[i] - mean) * inv) * weight[i] + bias[i];
}

// 0.5 x (1 + tanh(y)) written as x / (1 + exp(-2y)): the same function without tanh's cancellation near
// y = 0, and one expf, a third of tanhf's cost (GeGLU runs it on every MLP value of every prompt token).
float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return x / (1.0f + std::exp(-2.0f * (kSqrt2OverPi * (x + 0.044715f * x * x * x))));
}

void gelu_tanh_mul(const KernelTable& k, ThreadPool& pool, float* gate, const float* up, int64_t n,
                   Precision precision) {
  pool.parallel_for(
      n, [&](int64_t begin, int64_t end) {
        if (precision == Precision::Fast) {
          k.gelu_tanh_fast(gate + begin, end - begin);
          for (int64_t i = begin; i < end; ++i) gate[i] *= up[i];
        } else {
          for (int64_t i = begin; i < end; ++i) gate[i] = gelu_tanh(gate[i]) * up[i];
        }
      },
      4096);
}

}  // namespace medlab
