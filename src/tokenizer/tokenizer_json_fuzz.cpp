// Any bytes as tokenizer.json: a tokenizer that encodes and decodes, or medlab::Error.
#include "core/error.h"
#include "fuzz_support.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const medlab::fuzz::ScratchFile file("tokenizer.json");
  try {
    const medlab::Tokenizer tokenizer = medlab::Tokenizer::load(file.write(data, size));
    const auto ids = tokenizer.encode("Describe the X-ray.<start_of_turn>user\n  肺 \xc3\x28 \xff", true);
    for (medlab::TokenId id : ids) medlab::fuzz::require(id >= 0 && id < tokenizer.size(), "encode gave an id out of range");
    tokenizer.decode(ids, true);
    for (medlab::TokenId id = 0; id < std::min(tokenizer.size(), 64); ++id) tokenizer.piece(id);
  } catch (const medlab::Error&) {
  }
  return 0;
}
