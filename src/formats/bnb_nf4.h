// bitsandbytes 4-bit NormalFloat weights as transformers saves a load_in_4bit model (QLoRA): for each
// quantized Linear weight W the checkpoint holds
//   W                                  U8 [numel / 2, 1]  two 4-bit codes per byte, first in the high nibble
//   W.absmax                           F32 [blocks], or U8 [blocks] when double-quantized
//   W.quant_map                        F32 [16]           the NF4 levels
//   W.nested_absmax, W.nested_quant_map  F32               double quantization: absmax = map[u8] * nested + offset
//   W.quant_state.bitsandbytes__nf4    U8 JSON            {"quant_type", "blocksize", "dtype", "shape", and with
//                                                          double quantization "nested_blocksize", "nested_offset"}
// and config.json a quantization_config with quant_method "bitsandbytes", load_in_4bit and
// bnb_4bit_quant_type "nf4". Loading joins each weight's parts into one DType::NF4 tensor (BlockNF4,
// scales resolved to f32) under W's name and with W's real shape.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/safetensors.h"

namespace medlab {

struct JoinedTensor {
  std::string name;
  TensorView view;  // points into storage
  std::vector<uint8_t> storage;
};

// Joins every bitsandbytes NF4 weight found among `bytes` (U8 tensors) and `tensors` into NF4 tensors,
// removing its parts from both maps. `config_path` (config.json) must declare the quantization. Throws
// Error naming the tensor and part at fault; U8 tensors that belong to no NF4 weight are refused.
std::vector<JoinedTensor> join_bnb_nf4(std::map<std::string, TensorView>& tensors,
                                       std::map<std::string, ByteTensor>& bytes,
                                       const std::filesystem::path& config_path);

// The parts of one weight as bitsandbytes writes them with double quantization (blocks of 64, absmax
// double-quantized in blocks of 256 against its 8-bit dynamic map), for test checkpoints.
struct BnbNf4Parts {
  std::vector<uint8_t> codes;   // numel / 2
  std::vector<uint8_t> absmax;  // one code per 64-value block
  std::vector<float> quant_map, nested_absmax, nested_quant_map;
  float nested_offset = 0;
};
BnbNf4Parts bnb_nf4_quantize(const float* x, int64_t numel);
// The quant_state JSON for a weight of `shape` stored from `dtype` ("bfloat16", ...).
std::string bnb_nf4_state_json(const std::vector<int64_t>& shape, const std::string& dtype, float nested_offset);

}  // namespace medlab
