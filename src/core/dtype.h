// Element types of stored weights: plain floats, and block-quantized types whose blocks are laid out
// byte for byte as llama.cpp's ggml stores them (so GGUF data is used in place), plus NF4.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace medlab {

// Q8_K only ever holds activations (the partner of the K-quants in dot products), never weights.
// NF4 is bitsandbytes' 4-bit NormalFloat in medlab's block form (see core/quant.h).
// Q4_0x16, Q4_Kx16, Q5_Kx16 and Q6_Kx16 are Q4_0, Q4_K, Q5_K and Q6_K repacked at load in panels of 16 rows
// (kernels/x16_panels.h): only models and kernels hold them, never a file, and their rows are not
// contiguous, so the row functions of core/quant.h refuse them. Their block sizes are their row type's.
enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q8_K, NF4, Q4_0x16, Q4_Kx16, Q5_Kx16, Q6_Kx16 };

constexpr bool is_x16_panels(DType t) {
  return t == DType::Q4_0x16 || t == DType::Q4_Kx16 || t == DType::Q5_Kx16 || t == DType::Q6_Kx16;
}

constexpr bool is_quantized(DType t) { return t != DType::F32 && t != DType::F16 && t != DType::BF16; }

// Elements per block (1 for plain types) and bytes per block.
constexpr int64_t block_elements(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return 1;
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_0x16: return 32;
    case DType::NF4: return 64;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
    case DType::Q4_Kx16:
    case DType::Q5_Kx16:
    case DType::Q6_Kx16: return 256;
  }
  return 1;
}

constexpr size_t block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::Q8_0: return 34;
    case DType::Q4_0:
    case DType::Q4_0x16: return 18;
    case DType::Q4_K:
    case DType::Q4_Kx16: return 144;
    case DType::Q5_K:
    case DType::Q5_Kx16: return 176;
    case DType::Q6_K:
    case DType::Q6_Kx16: return 210;
    case DType::Q8_K: return 292;
    case DType::NF4: return 36;
  }
  return 0;
}

// Bytes of n consecutive elements; n must be a whole number of blocks (callers validate shapes first).
constexpr size_t row_bytes(DType t, int64_t n) { return size_t(n / block_elements(t)) * block_bytes(t); }

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
    case DType::Q4_K: return "q4_k";
    case DType::Q5_K: return "q5_k";
    case DType::Q6_K: return "q6_k";
    case DType::Q8_K: return "q8_k";
    case DType::NF4: return "nf4";
    case DType::Q4_0x16: return "q4_0x16";
    case DType::Q4_Kx16: return "q4_kx16";
    case DType::Q5_Kx16: return "q5_kx16";
    case DType::Q6_Kx16: return "q6_kx16";
  }
  return "?";
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as PyTorch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace medlab
