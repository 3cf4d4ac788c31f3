// Joining the results files of a sharded batch run (or of runs resumed elsewhere) into one, in the order
// of the whole run's pairs, with what is missing or doubled said plainly.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace medlab {

struct MergedResults {
  std::vector<nlohmann::json> rows;  // one per pair present, by index
  size_t pairs_total = 0;            // pairs in the whole run, as the rows say
  std::vector<size_t> missing;       // indices no file has a row for
  std::vector<std::string> duplicates;  // "id (file:line and file:line)": the same answer twice, kept once
  std::vector<std::string> conflicts;   // the same pair with different answers or ids: the first is kept
  std::vector<std::string> notes;       // differences that need not change answers (engine commit, ISA)
};

// Throws Error when the files cannot be from one run: rows with different models, seeds, sampler or
// generation settings, or different pair counts.
MergedResults merge_results(const std::vector<std::filesystem::path>& inputs);

}  // namespace medlab
