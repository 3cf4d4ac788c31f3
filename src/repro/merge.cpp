#include "repro/merge.h"

#include <map>

#include "core/error.h"
#include "repro/results_file.h"

namespace medlab {
namespace {

// The fields of a row's run manifest that decide its answer; rows that differ in these are not one run.
nlohmann::json deciding_settings(const nlohmann::json& row) {
  const nlohmann::json& run = row.value("run", nlohmann::json::object());
  return {{"model_sha256", row.value("model_sha256", nlohmann::json())},
          {"seed", row.value("seed", nlohmann::json())},
          {"sampler", run.value("sampler", nlohmann::json())},
          {"max_new_tokens", run.value("max_new_tokens", nlohmann::json())},
          {"stop", run.value("stop", nlohmann::json())},
          {"precision", run.value("precision", nlohmann::json())}};
}

bool same_answer(const nlohmann::json& a, const nlohmann::json& b) {
  for (const char* field : {"id", "answer", "tokens", "error"})
    if (a.value(field, nlohmann::json()) != b.value(field, nlohmann::json())) return false;
  return true;
}

}  // namespace

MergedResults merge_results(const std::vector<std::filesystem::path>& inputs) {
  if (inputs.empty()) fail("merge: no results files given");
  MergedResults out;
  std::map<size_t, std::pair<nlohmann::json, std::string>> by_index;  // index -> (row, "file:row")
  nlohmann::json settings;
  std::string settings_from;
  std::map<std::string, std::string> first_seen;  // engine commit / ISA -> where
  std::string first_engine;                        // the first row's, which the others are compared with
  for (const auto& path : inputs) {
    const ResultRows read = read_result_rows(path);
    if (read.torn_tail) out.notes.push_back(path.string() + ": its last row is incomplete and was left out");
    for (size_t i = 0; i < read.rows.size(); ++i) {
      const nlohmann::json& row = read.rows[i];
      const std::string where = path.string() + ":" + std::to_string(i + 1);
      if (!row.contains("index") || !row["index"].is_number_unsigned() || !row.contains("pairs") ||
          !row["pairs"].is_number_unsigned())
        fail(where, ": the row has no \"index\" and \"pairs\"; was it written by medlab batch?");
      const size_t pairs = row["pairs"].get<size_t>(), index = row["index"].get<size_t>();
      if (settings.is_null()) {
        settings = deciding_settings(row);
        settings_from = where;
        out.pairs_total = pairs;
      } else if (deciding_settings(row) != settings) {
        fail(where, ": made with other settings than ", settings_from, " (", deciding_settings(row).dump(), " vs ",
             settings.dump(), "); these files are not one run");
      } else if (pairs != out.pairs_total) {
        fail(where, ": the run had ", pairs, " pairs, but ", settings_from, " says ", out.pairs_total);
      }
      if (index >= pairs) fail(where, ": index ", index, " is beyond the run's ", pairs, " pairs");
      const nlohmann::json& run = row.value("run", nlohmann::json::object());
      const std::string engine = "engine commit " + run.value("commit", std::string("?")) + ", ISA " + run.value("isa", std::string("?"));
      if (first_engine.empty()) first_engine = engine;
      if (first_seen.emplace(engine, where).second && first_seen.size() > 1)
        out.notes.push_back(where + ": " + engine + " differs from " + first_engine + " (" + first_seen[first_engine] + ")");
      auto [it, fresh] = by_index.emplace(index, std::make_pair(row, where));
      if (fresh) continue;
      const std::string id = row.value("id", std::string("?"));
      (same_answer(it->second.first, row) ? out.duplicates : out.conflicts)
          .push_back(id + " (" + it->second.second + " and " + where + ")");
    }
  }
  if (settings.is_null()) fail("merge: the ", inputs.size(), " files hold no rows; nothing to merge");
  for (size_t index = 0; index < out.pairs_total; ++index) {
    auto it = by_index.find(index);
    if (it == by_index.end()) out.missing.push_back(index);
    else out.rows.push_back(std::move(it->second.first));
  }
  return out;
}

}  // namespace medlab
