// Reads tokenizer.json in one streaming pass. The vocabulary and merges (99% of a 33 MB file) go
// straight into flat vectors; every other section is kept as a small JSON value for validation.
// Building the full nlohmann DOM instead costs about a second more.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace medlab {

struct TokenizerJson {
  std::vector<std::pair<std::string, int64_t>> vocab;         // model.vocab, in file order
  std::vector<std::pair<std::string, std::string>> merges;    // model.merges, by rank
  std::map<std::string, nlohmann::json> model;                // model's other fields
  std::map<std::string, nlohmann::json> sections;             // top-level fields other than model
};

// Throws Error naming `path` on malformed JSON or an unexpected shape of vocab/merges.
TokenizerJson read_tokenizer_json(std::string_view text, const std::string& path);

}  // namespace medlab
