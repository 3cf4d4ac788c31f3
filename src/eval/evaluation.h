// medlab eval: predictions (batch result rows) matched to references, scored with the caption metrics and
// finding F1, for the whole set and per group, with bootstrap confidence intervals and a baseline check.
// The report is ordered JSON that depends only on the inputs and options (no time, no paths' contents
// beyond what they hold), so a rerun gives the same bytes. Formats and definitions: docs/EVALUATION.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/findings.h"

namespace medlab {

// One line of a references file: {"id", "references": [...] or "reference": "...", "category"?, ...}.
struct ReferenceRow {
  std::string id;
  std::vector<std::string> references;  // at least one
  nlohmann::json fields;                // the whole line, for --by FIELD
  int line = 0;
};

// One line of a predictions file (a `medlab batch` row).
struct PredictionRow {
  std::string id;
  std::string image_id;  // empty when the row has none
  std::string answer;    // empty when the row has an error
  std::optional<std::string> error;
  nlohmann::json run;  // the row's run manifest, null when it has none
  std::optional<size_t> index;  // a batch row's pair index
  int line = 0;
};

// Each fails on an unreadable or empty file, a line that is not a JSON object, a missing or mistyped field
// or an id seen twice, naming FILE:LINE. Blank lines are skipped. Predictions that all carry a batch "index"
// come back in index order, so that the order rows were written in (which follows when pairs finished) never
// changes a figure, bootstrap intervals included.
std::vector<ReferenceRow> read_references(const std::filesystem::path& path);
std::vector<PredictionRow> read_predictions(const std::filesystem::path& path);

// A prediction with the references it is scored against.
struct EvalItem {
  std::string id;
  std::string group;  // the reference's --by field as text; "(none)" when it lacks one
  std::string answer;
  std::vector<std::string> references;
  std::optional<std::string> error;  // the row's error: then scored as an empty answer
};

struct Matching {
  std::vector<EvalItem> items;  // in predictions order
  std::vector<std::string> unmatched_predictions, unmatched_references;
};

// A prediction matches the reference with its id, else the one with its image_id (batch row "x#1" matches
// reference "x"; several questions on one image all match it). `group_by` empty: every group is "".
Matching match_items(const std::vector<PredictionRow>& predictions, const std::vector<ReferenceRow>& references,
                     const std::string& group_by);

struct EvalOptions {
  std::string group_by;  // reference field to group by, or empty
  int bootstrap = 0;     // resamples for the 95% intervals; 0 for none
  uint64_t bootstrap_seed = 0;
  UncertainPolicy uncertain = UncertainPolicy::AsPositive;
  bool allow_missing = false;  // unmatched ids are listed in the report instead of failing
};

// The metric names, in report order: BLEU-1..4, ROUGE-L, CIDEr-D, Finding macro F1, Finding micro F1.
const std::vector<std::string>& metric_names();

// The whole report (see docs/EVALUATION.md, "medlab eval", for its fields). Fails on unmatched ids unless
// options.allow_missing, and when nothing is left to score.
nlohmann::ordered_json evaluate(const std::vector<PredictionRow>& predictions,
                                const std::vector<ReferenceRow>& references, const EvalOptions& options);

// Baseline file: {"metrics": {"BLEU-4": {"value": 32.17, "tolerance": 0.5}, ...}}.
// Adds report["baseline"] = {"result": "PASS"|"FAIL", "metrics": {name: {value, baseline, tolerance,
// difference, result}}}; a metric is PASS when |value - baseline| <= tolerance. Returns true when all pass.
// Fails when the file names a metric the report lacks or is not in that shape.
bool check_baseline(nlohmann::ordered_json& report, const nlohmann::json& baseline, const std::string& source);

// A baseline from this report: each corpus metric with tolerance `tolerance` when given, else the half-width
// of its confidence interval (fails without --bootstrap). Metrics that are null (nothing scored) are left out.
nlohmann::ordered_json make_baseline(const nlohmann::ordered_json& report, std::optional<double> tolerance);

// Two decimals, as the report prints scores: "32.17"; "n/a" for null.
std::string score_text(const nlohmann::ordered_json& value);

// The corpus metrics a line each, as medlab eval and medlab repro print them:
// "BLEU-4: 32.17 ± 0.42 (95% CI 31.75 to 32.59) PASS (baseline 32.00 ± 0.50)".
std::string metric_lines(const nlohmann::ordered_json& report);

// A baseline file as JSON; fails naming the file when it cannot be read or is not JSON.
nlohmann::json read_baseline(const std::filesystem::path& path);

}  // namespace medlab
