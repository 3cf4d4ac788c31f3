// Any bytes as a .gguf file: the reader either checks every tensor into the file or refuses with
// medlab::Error, and so do the tokenizer and the checkpoint built from what it accepted.
#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf_reader.h"
#include "fuzz_support.h"
#include "runtime/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const medlab::fuzz::ScratchFile file("model.gguf");
  const std::string& path = file.write(data, size);
  try {
    const medlab::GgufFile gguf(path);
    for (const medlab::GgufTensor& tensor : gguf.tensors()) medlab::fuzz::touch(tensor.data, tensor.bytes);
    try {
      const medlab::Tokenizer tokenizer = medlab::gguf_tokenizer(gguf);
      tokenizer.decode(tokenizer.encode("A chest X-ray: <start_of_turn>user\n 肺 \xff", true));
    } catch (const medlab::Error&) {
    }
    const medlab::Checkpoint checkpoint = medlab::Checkpoint::open(path);
    for (const auto& [name, tensor] : checkpoint.tensors()) medlab::fuzz::touch(tensor.data, tensor.nbytes());
  } catch (const medlab::Error&) {
  }
  return 0;
}
