// Compute kernels used by the models, chosen once per process from what the CPU offers.
//
// Every kernel has a portable scalar version (the reference the tests compare against) and, where
// it pays, versions for wider vector units. Reductions run in a fixed order that depends only on
// the reduction length, so results never depend on the thread count or on how many rows share a call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace medlab {

// A row-major weight matrix [rows, cols] in its stored dtype, viewed in place; a row of a quantized
// type is row_bytes(dtype, cols) bytes of blocks.
struct WeightMatrix {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
};

// Amx is the Avx512 set with AMX tiles: for the prefill of the block-quantized types (the same bits, sooner)
// and for fast bf16 (bits of its own, bf16_matmul.h).
enum class Isa { Scalar, Avx2, Avx512, Amx };
const char* isa_name(Isa isa);

// The functions one ISA provides.
struct KernelTable {
  Isa isa;
  // y[i][r] = dot(x[i], w[r]) for i < m, r in [row_begin, row_end); y has row stride y_stride.
  void (*matmul_rows)(const float* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                      float* y, int64_t y_stride);
  // Quantized weights (kernels/quant_matmul.h). dequantize: n values of one row of blocks to f32, with
  // dequantize_row's bits. quant_matmul_rows: matmul_rows in Precision::Fast, from activation rows already
  // quantized to fast_activation_type(w.dtype) (Q8_0 in the Q8Row layout), fast_activation_row_bytes apart.
  void (*dequantize)(DType type, const void* row, float* y, int64_t n);
  void (*quant_matmul_rows)(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                            float* y, int64_t y_stride);
  // An activation row of `cols` floats to Q8_0 in the Q8Row layout (quantize_q8_row's bytes).
  void (*quantize_q8_row)(const float* x, int64_t cols, uint8_t* out);
  // bf16 weights in Precision::Fast (kernels/bf16_matmul.h): activation rows already rounded to bf16.
  void (*bf16_matmul_rows)(const uint16_t* x, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                           float* y, int64_t y_stride);
  // Precision::Fast's elementwise steps (kernels/fast_elementwise.h), the same bits in every set:
  // y[i] = bf16_activation(x[i]), and x[i] = gelu_tanh_fast(x[i]).
  void (*bf16_activations)(const float* x, uint16_t* y, int64_t n);
  void (*gelu_tanh_fast)(float* x, int64_t n);
};

const KernelTable& scalar_kernels();
const KernelTable* avx2_kernels();    // null when the CPU lacks AVX2, FMA or F16C
const KernelTable* avx512_kernels();  // null when the CPU or OS lacks AVX-512 F/BW/VL
const KernelTable* amx_kernels();     // null without AVX-512 VNNI and AMX-BF16/INT8 that the OS lets this process use
std::vector<const KernelTable*> available_kernels();  // every set this CPU runs, scalar first

// The best table for this CPU, detected on first use.
const KernelTable& best_kernels();
// The table for a named ISA ("scalar", "avx2", "avx512", "amx"), or an error if this CPU cannot run it.
const KernelTable& kernels_for(const std::string& isa_name);

// How weights meet the f32 activations. Exact: weights widened to f32, f32 products and sums (what the
// parity tests run). Fast, as llama.cpp does: for quantized weights each activation row is quantized per
// block (Q8_0, or Q8_K for the K-quants) and blocks multiply in integers; for bf16 weights activations
// are rounded to bf16 and products summed in pairs (AVX512-BF16's order, or AMX's). f32 and f16 weights are exact
// in both modes. Either way an output's bits depend only on its own input row and weight row.
enum class Precision { Exact, Fast };

// y[m, w.rows] = x[m, w.cols] @ w^T, split over output columns across the pool.
void matmul(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const WeightMatrix& w, float* y,
            Precision precision = Precision::Exact);

// Calls fn(begin, end) on slices of a matmul's weight rows [0, rows), in multiples of 16, across the pool.
// With few activation rows (decode) the product streams weights from memory, so the threads take chunks as
// they come free: a thread that the hypervisor slows then does not hold the others up at the end. With more
// rows it is bound by arithmetic, and each thread keeps one contiguous slice, whose L2 blocks stay whole.
template <class Fn>
void split_weight_rows(ThreadPool& pool, int64_t m, int64_t rows, Fn&& fn) {
  constexpr int64_t kStreamingRows = 4;  // below this many activation rows
  if (m < kStreamingRows)
    pool.parallel_chunks(rows, fn, 16);
  else
    pool.parallel_for(rows, fn, 16);
}

// Gemma's RMSNorm: y = x / sqrt(mean(x^2) + eps) * scale, where scale already holds (1 + w).
void rms_norm(const float* x, const float* scale, float* y, int64_t n, float eps);
// LayerNorm with bias (SigLIP).
void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t n, float eps);
// gate[i] = gelu_tanh(gate[i]) * up[i]  (GeGLU with PyTorch's tanh approximation), split over the pool;
// Precision::Fast takes the kernels' gelu_tanh_fast.
void gelu_tanh_mul(const KernelTable& k, ThreadPool& pool, float* gate, const float* up, int64_t n,
                   Precision precision);
float gelu_tanh(float x);

}  // namespace medlab
