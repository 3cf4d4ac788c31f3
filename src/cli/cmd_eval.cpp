// medlab eval: scores a batch run's answers against reference reports (BLEU-1..4, ROUGE-L, CIDEr-D, finding
// F1), with bootstrap intervals, optional groups and a baseline check; writes JSON and a self-contained HTML
// report. Exit code 3 when a metric falls outside its baseline band.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/evaluation.h"
#include "eval/html_report.h"
#include "repro/results_file.h"
#include "repro/run_manifest.h"

namespace medlab::cli {
namespace {

constexpr int kBaselineFailed = 3;

struct Options {
  std::string predictions, references, by, baseline, write_baseline, out_json, out_html;
  std::string uncertain = "positive";
  int bootstrap = 0;
  uint64_t bootstrap_seed = 0;
  std::optional<double> tolerance;
  bool allow_missing = false;
};

void warn_about_inputs(const nlohmann::ordered_json& report) {
  const auto list = [](const nlohmann::ordered_json& ids) {
    std::string text;
    for (const auto& id : ids)
      text += (text.empty() ? "" : ", ") + (id.is_string() ? id.get<std::string>() : id["id"].get<std::string>());
    return text;
  };
  if (!report["unmatched_predictions"].empty())
    std::fprintf(stderr, "medlab eval: not scored, no reference: %s\n", list(report["unmatched_predictions"]).c_str());
  if (!report["unmatched_references"].empty())
    std::fprintf(stderr, "medlab eval: not scored, no prediction: %s\n", list(report["unmatched_references"]).c_str());
  if (!report["errored"].empty())
    std::fprintf(stderr, "medlab eval: scored as empty answers (rows with an error): %s\n",
                 list(report["errored"]).c_str());
  for (const auto& d : report["run_disagreements"])
    std::fprintf(stderr, "medlab eval: warning: prediction rows disagree on run field \"%s\": %s\n",
                 d["field"].get<std::string>().c_str(), d["values"].dump().c_str());
  if (report["rows_without_run"].get<size_t>() > 0)
    std::fprintf(stderr, "medlab eval: warning: %zu prediction row(s) have no run manifest\n",
                 report["rows_without_run"].get<size_t>());
}

void evaluate_files(const Options& o) {
  const std::vector<ReferenceRow> references = read_references(o.references);
  const std::vector<PredictionRow> predictions = read_predictions(o.predictions);
  if (!o.by.empty() && std::none_of(references.begin(), references.end(),
                                    [&](const ReferenceRow& r) { return r.fields.contains(o.by); }))
    fail("eval: --by ", o.by, ": no reference in ", o.references, " has that field");
  const EvalOptions options{
      .group_by = o.by,
      .bootstrap = o.bootstrap,
      .bootstrap_seed = o.bootstrap_seed,
      .uncertain = o.uncertain == "negative" ? UncertainPolicy::AsNegative : UncertainPolicy::AsPositive,
      .allow_missing = o.allow_missing};
  nlohmann::ordered_json report = evaluate(predictions, references, options);
  bool passed = true;
  if (!o.baseline.empty()) passed = check_baseline(report, read_baseline(o.baseline), o.baseline);

  // Everything that can fail on the inputs comes before the first write: bad input leaves no report.
  const nlohmann::ordered_json new_baseline =
      o.write_baseline.empty() ? nlohmann::ordered_json() : make_baseline(report, o.tolerance);
  if (!o.out_json.empty()) write_text_file(o.out_json, report.dump(2) + "\n");
  if (!o.out_html.empty()) write_text_file(o.out_html, html_report(report, utc_timestamp()));
  if (!o.write_baseline.empty()) write_text_file(o.write_baseline, new_baseline.dump(2) + "\n");

  warn_about_inputs(report);
  std::printf("medlab eval: %zu items, scores x100", report["items"].get<size_t>());
  if (report["bootstrap"].is_object())
    std::printf(", 95%% CI from %d bootstrap resamples (seed %llu)", o.bootstrap,
                static_cast<unsigned long long>(o.bootstrap_seed));
  std::printf("\n");
  std::printf("%s", metric_lines(report).c_str());
  if (report.contains("baseline"))
    std::printf("baseline %s: %s\n", o.baseline.c_str(), report["baseline"]["result"].get<std::string>().c_str());
  std::fflush(stdout);
  if (!passed) {
    std::string outside;
    for (const auto& [name, check] : report["baseline"]["metrics"].items())
      if (check["result"] == "FAIL") outside += (outside.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "medlab eval: FAIL: outside the baseline band: %s\n", outside.c_str());
    throw CLI::RuntimeError(kBaselineFailed);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Score a batch run's answers against references: BLEU-1..4, ROUGE-L, CIDEr-D (as pycocoevalcap) and "
      "CheXpert-style\n"
      "finding F1, x100 with 2 decimals. Prints the corpus table; --out-json and --out-html write the full report.\n"
      "Exit codes: 0 ok, 1 bad input, 3 a metric outside its --baseline band.");
  cmd->add_option("--predictions", o->predictions, "JSON Lines from medlab batch (id, image_id, answer, error, run)")
      ->required();
  cmd->add_option("--references", o->references,
                  "JSON Lines: {\"id\", \"references\": [...] or \"reference\": \"...\", \"category\"?}; a prediction "
                  "matches by its id, else its image_id")
      ->required();
  cmd->add_option("--by", o->by, "Also score per value of this reference field (e.g. category)");
  cmd->add_option("--bootstrap", o->bootstrap, "Resamples for 95% percentile confidence intervals (0: none)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--bootstrap-seed", o->bootstrap_seed, "Seed of the resampling (the same seed gives the same bytes)")
      ->capture_default_str();
  cmd->add_option("--baseline", o->baseline,
                  "{\"metrics\": {\"BLEU-4\": {\"value\": 32.17, \"tolerance\": 0.5}}}: PASS/FAIL per metric");
  cmd->add_option("--write-baseline", o->write_baseline, "Write this run's metrics as a baseline file");
  cmd->add_option("--tolerance", o->tolerance,
                  "Tolerance written by --write-baseline (default: each 95% CI half-width)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out-json", o->out_json, "Write the report as JSON (no time in it: reruns give the same bytes)");
  cmd->add_option("--out-html", o->out_html, "Write a self-contained HTML report (tables, SVG charts)");
  cmd->add_option("--uncertain", o->uncertain, "What a hedged finding counts as: positive or negative")
      ->check(CLI::IsMember({"positive", "negative"}))
      ->capture_default_str();
  cmd->add_flag("--allow-missing", o->allow_missing,
                "Score the matched items when some ids have no counterpart (they are listed), instead of failing");
  cmd->callback([o] { evaluate_files(*o); });
}

}  // namespace medlab::cli
