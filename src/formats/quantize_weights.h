// Quantizing a checkpoint's decoder matrices when it is loaded (medlab run --quant), so an f32/f16/bf16
// checkpoint runs with block-quantized weights without a converted copy on disk.
#pragma once

#include "core/dtype.h"
#include "formats/checkpoint.h"

namespace medlab {

struct QuantizeSummary {
  int64_t tensors = 0;  // matrices quantized
  int64_t kept = 0;     // matrices left as they were: rows not a whole number of blocks
  uint64_t bytes_before = 0, bytes_after = 0;
};

// Replaces the decoder's q/k/v/o/gate/up/down matrices and the (tied) token embedding by `type`
// (a block-quantized dtype other than q8_k), through Checkpoint::adopt_tensor; the mapped pages of each
// source matrix are released once it is quantized. A matrix whose rows are
// not a whole number of blocks keeps its type. Throws Error naming the tensor if one is already
// quantized. Uses `threads` threads.
QuantizeSummary quantize_weights(Checkpoint& checkpoint, DType type, int threads);

// "q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "nf4" -> the dtype; throws Error listing them otherwise.
DType parse_weight_quant(std::string_view name);

}  // namespace medlab
