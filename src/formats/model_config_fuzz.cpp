// Any bytes as config.json: a checked ModelConfig whose tensor list can be built and which writes back
// to a config.json that parses to the same, or medlab::Error.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/model_config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = nlohmann::json::parse(data, data + size, nullptr, false);
  if (json.is_discarded()) return 0;  // not JSON: load_model_config's own message, nothing to fuzz
  try {
    const medlab::ModelConfig config = medlab::parse_model_config(json, "config.json");
    const auto tensors = medlab::expected_tensors(config);
    medlab::fuzz::require(!tensors.empty(), "a config with no tensors");
    const nlohmann::json written = medlab::model_config_to_json(config);
    const medlab::ModelConfig again = medlab::parse_model_config(written, "written config.json");
    medlab::fuzz::require(medlab::model_config_to_json(again) == written, "config.json does not round-trip");
  } catch (const medlab::Error&) {
  }
  return 0;
}
