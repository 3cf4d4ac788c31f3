// A typed, shaped view of tensor data that lives elsewhere (usually a mapped file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace medlab {

struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first, as safetensors and PyTorch list it
  const void* data = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return row_bytes(dtype, numel()); }
};

std::string shape_string(const std::vector<int64_t>& shape);  // "[2560, 10240]"

// Element i of a tensor of any stored dtype, as f32.
float element_f32(const TensorView& t, int64_t i);

}  // namespace medlab
