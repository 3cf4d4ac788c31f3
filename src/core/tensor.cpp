#include "core/tensor.h"

#include <cstring>

#include "core/quant.h"

namespace medlab {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

float element_f32(const TensorView& t, int64_t i) {
  const auto* bytes = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, bytes + 4 * i, 4);
      return f;
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      return f16_to_f32(h);
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      return bf16_to_f32(h);
    }
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
    case DType::NF4:
    case DType::Q4_0x16:
    case DType::Q4_Kx16:
    case DType::Q5_Kx16:
    case DType::Q6_Kx16: {  // dequantize the block that holds element i
      const int64_t per_block = block_elements(t.dtype);
      float block[256];
      dequantize_row(t.dtype, bytes + size_t(i / per_block) * block_bytes(t.dtype), block, per_block);
      return block[i % per_block];
    }
  }
  return 0.0f;
}

}  // namespace medlab
