#include "formats/quantize_weights.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"

namespace medlab {
namespace {

constexpr DType kWeightQuants[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::NF4};

std::vector<std::string> decoder_matrices(const TextConfig& text) {
  std::vector<std::string> names = {"embed_tokens.weight"};
  for (int64_t i = 0; i < text.num_hidden_layers; ++i) {
    const std::string layer = "layers." + std::to_string(i) + ".";
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      names.push_back(layer + m + ".weight");
  }
  return names;
}

}  // namespace

DType parse_weight_quant(std::string_view name) {
  std::string known;
  for (DType t : kWeightQuants) {
    if (dtype_name(t) == name) return t;
    known += (known.empty() ? "" : ", ") + std::string(dtype_name(t));
  }
  fail("quantization type '", name, "' is not one of ", known);
}

QuantizeSummary quantize_weights(Checkpoint& checkpoint, DType type, int threads) {
  if (!is_quantized(type) || type == DType::Q8_K) fail("quantize: ", dtype_name(type), " is not a weight quantization");
  ThreadPool pool(threads);
  QuantizeSummary summary;
  for (const std::string& name : decoder_matrices(checkpoint.config().text)) {
    const std::string full = checkpoint.layout().text + name;
    const TensorView source = checkpoint.text(name);
    if (is_quantized(source.dtype))
      fail("tensor ", full, ": already ", dtype_name(source.dtype), "; quantizing at load takes f32, f16 or bf16 weights");
    if (source.shape.size() != 2) fail("tensor ", full, ": shape ", shape_string(source.shape), " is not a matrix");
    const int64_t rows = source.shape[0], cols = source.shape[1];
    if (cols % block_elements(type) != 0) {
      ++summary.kept;
      continue;
    }
    std::vector<uint8_t> storage(row_bytes(type, cols) * size_t(rows));
    pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = begin; r < end; ++r) {
        dequantize_row(source.dtype, static_cast<const uint8_t*>(source.data) + row_bytes(source.dtype, r * cols), row.data(), cols);
        quantize_row(type, row.data(), storage.data() + row_bytes(type, cols) * size_t(r), cols);
      }
    });
    // The source's pages leave memory (they come back from the file if read again): quantizing a bf16
    // checkpoint then never holds more than the quantized weights and one source matrix.
    if (const MappedFile* file = checkpoint.mapping_of(source.data, source.nbytes()))
      file->release(source.data, source.nbytes());
    summary.bytes_before += source.nbytes();
    summary.bytes_after += storage.size();
    ++summary.tensors;
    TensorView view{type, source.shape, storage.data()};
    checkpoint.adopt_tensor(full, std::move(view), std::move(storage));
  }
  return summary;
}

}  // namespace medlab
