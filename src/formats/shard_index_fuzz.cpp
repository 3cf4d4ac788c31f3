// Any bytes as model.safetensors.index.json: a map of plain shard file names, or medlab::Error.
#include "core/error.h"
#include "formats/checkpoint.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto shards = medlab::read_shard_index({reinterpret_cast<const char*>(data), size}, "index.json");
    for (const auto& [shard, names] : shards) {
      medlab::fuzz::require(!shard.empty() && shard.find('/') == std::string::npos && shard != "..",
                            "a shard name that leaves the model folder was accepted");
      medlab::fuzz::require(!names.empty(), "a shard without tensors");
    }
  } catch (const medlab::Error&) {
  }
  return 0;
}
