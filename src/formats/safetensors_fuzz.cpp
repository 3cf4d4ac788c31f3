// Any bytes as a .safetensors file: either every tensor lies inside the file, or medlab::Error.
#include "core/error.h"
#include "formats/safetensors.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const medlab::fuzz::ScratchFile file("model.safetensors");
  try {
    const medlab::SafetensorsFile weights(file.write(data, size));
    for (const auto& [name, tensor] : weights.tensors()) medlab::fuzz::touch(tensor.data, tensor.nbytes());
    for (const auto& [name, tensor] : weights.byte_tensors()) medlab::fuzz::touch(tensor.data, tensor.size);
  } catch (const medlab::Error&) {
  }
  return 0;
}
