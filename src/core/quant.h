// Block-quantized weight types. The blocks are byte-for-byte llama.cpp's (ggml-common.h), so tensors
// in a GGUF file are used in place, and quantize_row rounds exactly as llama.cpp's reference
// quantizers (quantize_row_*_ref) do, so medlab and llama.cpp write identical files.
//
// NF4 is bitsandbytes' 4-bit NormalFloat (QLoRA): 64 weights share one absmax scale and each weight
// is a 4-bit index into a fixed table of 16 values in [-1, 1]. A transformers + bitsandbytes
// checkpoint keeps codes and (double-quantized) scales in separate tensors; medlab joins them at load
// into BlockNF4, the scale already resolved to f32.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace medlab {

inline constexpr int kQK = 256;  // weights per K-quant super-block

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;       // f16 scale
  uint8_t qs[16];   // weight j in the low nibble of byte j, weight j + 16 in its high nibble; value (q - 8) * d
};
struct BlockQ4_K {
  uint16_t d, dmin;    // f16 super-block scales of the 6-bit sub-block scales and mins
  uint8_t scales[12];  // 8 sub-blocks of 32: 6-bit scale and 6-bit min each, packed
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];  // the fifth bit
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];   // low 4 bits
  uint8_t qh[64];    // high 2 bits
  int8_t scales[16];  // 16 sub-blocks of 16
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];  // sums of qs in groups of 16
};
struct BlockNF4 {
  float d;          // absmax of the 64 weights
  uint8_t qs[32];   // weight 2j in the high nibble of byte j, weight 2j + 1 in the low nibble (bitsandbytes' order)
};

static_assert(sizeof(BlockQ8_0) == block_bytes(DType::Q8_0));
static_assert(sizeof(BlockQ4_0) == block_bytes(DType::Q4_0));
static_assert(sizeof(BlockQ4_K) == block_bytes(DType::Q4_K));
static_assert(sizeof(BlockQ5_K) == block_bytes(DType::Q5_K));
static_assert(sizeof(BlockQ6_K) == block_bytes(DType::Q6_K));
static_assert(sizeof(BlockQ8_K) == block_bytes(DType::Q8_K));
static_assert(sizeof(BlockNF4) == block_bytes(DType::NF4));

// The 16 NF4 levels, as bitsandbytes defines them.
extern const float kNf4Levels[16];

// n values (a whole number of blocks) to blocks of `type`, rounding as llama.cpp's reference
// quantizers do (for NF4: as bitsandbytes does, nearest level). Plain types convert (f16/bf16 round
// to nearest even).
void quantize_row(DType type, const float* x, void* y, int64_t n);
// Blocks back to n f32 values, exactly as llama.cpp's dequantize_row_* computes them.
void dequantize_row(DType type, const void* x, float* y, int64_t n);

}  // namespace medlab
