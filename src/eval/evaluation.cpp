#include "eval/evaluation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <span>
#include <unordered_map>

#include "core/error.h"
#include "eval/caption_metrics.h"

namespace medlab {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr size_t kMetricCount = 8;
using Metrics = std::array<double, kMetricCount>;  // in metric_names() order, x100; NaN when unscored
constexpr size_t kListedInErrors = 20;
constexpr size_t kWorstItems = 10;

struct JsonLine {
  int line;
  nlohmann::json value;
};

// Every non-blank line as a JSON object; `what` names the file's role in errors.
std::vector<JsonLine> read_json_lines(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(what, " file ", path.string(), ": cannot be read");
  std::vector<JsonLine> lines;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded()) fail(path.string(), ":", number, ": not a JSON line");
    if (!value.is_object()) fail(path.string(), ":", number, ": expected a JSON object, found ", value.type_name());
    lines.push_back({number, std::move(value)});
  }
  if (lines.empty()) fail(what, " file ", path.string(), ": empty (no JSON lines)");
  return lines;
}

std::string string_field(const JsonLine& l, const std::filesystem::path& path, const char* key) {
  const auto it = l.value.find(key);
  if (it == l.value.end()) fail(path.string(), ":", l.line, ": no \"", key, "\"");
  if (!it->is_string()) fail(path.string(), ":", l.line, ": \"", key, "\" is not a string");
  return it->get<std::string>();
}

// Fails on an id seen before in the same file, naming both lines.
void check_unique(std::map<std::string, int>& seen, const std::string& id, int line,
                  const std::filesystem::path& path) {
  const auto [it, inserted] = seen.emplace(id, line);
  if (!inserted) fail(path.string(), ":", line, ": id \"", id, "\" already on line ", it->second);
}

std::string listed(const std::vector<std::string>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size() && i < kListedInErrors; ++i) text += (i ? ", " : "") + ids[i];
  if (ids.size() > kListedInErrors) text += " and " + std::to_string(ids.size() - kListedInErrors) + " more";
  return text;
}

double round2(double x) { return std::round(x * 100) / 100 + 0.0; }  // + 0.0: no "-0.0"

ordered_json score(double x) { return std::isfinite(x) ? ordered_json(round2(x)) : ordered_json(nullptr); }

// Unbiased draws in [0, n) from a 64-bit generator (std::uniform_int_distribution differs between libraries).
size_t draw(std::mt19937_64& rng, size_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;)
    if (const uint64_t x = rng(); x < limit) return x % n;
}

// One generator per scope (the whole set, then each group in order), all from the one seed.
uint64_t scope_seed(uint64_t seed, uint64_t scope) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (scope + 1);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// numpy's default percentile (linear between closest ranks) over sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  const double rank = p / 100 * static_cast<double>(sorted.size() - 1);
  const size_t low = static_cast<size_t>(rank);
  if (low + 1 >= sorted.size()) return sorted.back();
  return sorted[low] + (rank - static_cast<double>(low)) * (sorted[low + 1] - sorted[low]);
}

FindingLabels mentions_only(FindingLabels labels) {
  for (FindingLabel& l : labels.labels) l.phrase.clear(), l.cue.clear();
  return labels;
}

// Everything per item that does not depend on which items are scored together. CIDEr-D per item uses the
// document frequencies of the whole evaluated set, so a group's or a resample's CIDEr-D is a mean of these.
struct Prepared {
  std::vector<BleuCounts> bleu;
  std::vector<FindingLabels> predicted, referenced;  // mentions only (no phrases): cheap to copy per resample
  CaptionScores scores;
};

Metrics corpus_metrics(const Prepared& p, std::span<const size_t> items, UncertainPolicy policy) {
  BleuCounts pooled;
  std::vector<FindingLabels> predicted, referenced;
  double rouge = 0, cider = 0;
  for (size_t i : items) {
    pooled.add(p.bleu[i]);
    predicted.push_back(p.predicted[i]);
    referenced.push_back(p.referenced[i]);
    rouge += p.scores.rouge_l.per_item[i];
    cider += p.scores.cider_d.per_item[i];
  }
  const std::array<double, 4> b = bleu_from_counts(pooled);
  const FindingScores f = finding_f1(predicted, referenced, policy);
  const double n = static_cast<double>(items.size());
  return {100 * b[0],      100 * b[1],      100 * b[2],       100 * b[3],
          100 * rouge / n, 100 * cider / n, 100 * f.macro_f1, 100 * f.micro_f1};
}

// {name: {"value", "ci"?}} for these items, with o.bootstrap resamples of as many items.
ordered_json metrics_json(const Prepared& p, const std::vector<size_t>& items, const EvalOptions& o, uint64_t scope) {
  const Metrics point = corpus_metrics(p, items, o.uncertain);
  std::array<std::vector<double>, kMetricCount> draws;
  std::mt19937_64 rng(scope_seed(o.bootstrap_seed, scope));
  std::vector<size_t> sample(items.size());
  for (int b = 0; b < o.bootstrap; ++b) {
    for (size_t& s : sample) s = items[draw(rng, items.size())];
    const Metrics m = corpus_metrics(p, sample, o.uncertain);
    for (size_t k = 0; k < kMetricCount; ++k)
      if (std::isfinite(m[k])) draws[k].push_back(m[k]);
  }
  ordered_json out = ordered_json::object();
  for (size_t k = 0; k < kMetricCount; ++k) {
    ordered_json& metric = out[metric_names()[k]] = {{"value", score(point[k])}};
    if (o.bootstrap == 0) continue;
    std::sort(draws[k].begin(), draws[k].end());
    metric["ci"] = draws[k].empty()
                       ? ordered_json(nullptr)
                       : ordered_json::array({score(percentile(draws[k], 2.5)), score(percentile(draws[k], 97.5))});
  }
  return out;
}

// The first row's run manifest, and each manifest field on which rows disagree.
void add_run(ordered_json& report, const std::vector<PredictionRow>& rows) {
  const PredictionRow* first = nullptr;
  std::map<std::string, std::vector<std::string>> values;  // field -> distinct values, as JSON text
  size_t without = 0;
  for (const PredictionRow& r : rows) {
    if (!r.run.is_object()) {
      ++without;
      continue;
    }
    if (!first) first = &r;
    for (const auto& [key, _] : r.run.items()) values[key];
  }
  for (const PredictionRow& r : rows) {
    if (!r.run.is_object()) continue;
    for (auto& [key, seen] : values) {
      const auto it = r.run.find(key);
      const std::string text = it == r.run.end() ? "null" : it->dump();
      if (std::find(seen.begin(), seen.end(), text) == seen.end()) seen.push_back(text);
    }
  }
  report["run"] = first ? ordered_json(first->run) : ordered_json(nullptr);
  ordered_json disagreements = ordered_json::array();
  for (const auto& [key, seen] : values) {
    if (seen.size() < 2) continue;
    ordered_json listed_values = ordered_json::array();
    for (const std::string& v : seen) listed_values.push_back(ordered_json::parse(v));
    disagreements.push_back({{"field", key}, {"values", listed_values}});
  }
  report["run_disagreements"] = disagreements;
  report["rows_without_run"] = without;
}

ordered_json findings_json(const Prepared& p, UncertainPolicy policy) {
  const FindingScores f = finding_f1(p.predicted, p.referenced, policy);
  ordered_json table = ordered_json::array();
  for (size_t k = 0; k < kFindingCount; ++k) {
    const FindingScore& s = f.per_finding[k];
    const double nan = std::nan("");
    table.push_back({{"finding", finding_name(static_cast<Finding>(k))},
                     {"tp", s.true_positives},
                     {"fp", s.false_positives},
                     {"fn", s.false_negatives},
                     {"support", s.support},
                     {"precision", score(s.scored ? 100 * s.precision : nan)},
                     {"recall", score(s.scored ? 100 * s.recall : nan)},
                     {"f1", score(s.scored ? 100 * s.f1 : nan)}});
  }
  return table;
}

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"BLEU-1",  "BLEU-2",  "BLEU-3",           "BLEU-4",
                                                 "ROUGE-L", "CIDEr-D", "Finding macro F1", "Finding micro F1"};
  return names;
}

std::vector<ReferenceRow> read_references(const std::filesystem::path& path) {
  std::vector<ReferenceRow> rows;
  std::map<std::string, int> seen;
  for (const JsonLine& l : read_json_lines(path, "references")) {
    ReferenceRow row{.id = string_field(l, path, "id"), .fields = l.value, .line = l.line};
    check_unique(seen, row.id, l.line, path);
    if (const auto it = l.value.find("references"); it != l.value.end()) {
      if (!it->is_array() || it->empty()) fail(path.string(), ":", l.line, ": \"references\" is not a non-empty list");
      for (const auto& r : *it) {
        if (!r.is_string())
          fail(path.string(), ":", l.line, ": \"references\" holds a ", r.type_name(), ", not a string");
        row.references.push_back(r.get<std::string>());
      }
    } else if (l.value.contains("reference")) {
      row.references.push_back(string_field(l, path, "reference"));
    } else {
      fail(path.string(), ":", l.line, ": no \"references\" (a list) or \"reference\" (a string)");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<PredictionRow> read_predictions(const std::filesystem::path& path) {
  std::vector<PredictionRow> rows;
  std::map<std::string, int> seen;
  for (const JsonLine& l : read_json_lines(path, "predictions")) {
    PredictionRow row{.id = string_field(l, path, "id"), .line = l.line};
    check_unique(seen, row.id, l.line, path);
    if (const auto it = l.value.find("image_id"); it != l.value.end() && !it->is_null())
      row.image_id = string_field(l, path, "image_id");
    if (const auto it = l.value.find("error"); it != l.value.end() && !it->is_null())
      row.error = it->is_string() ? it->get<std::string>() : it->dump();
    const auto answer = l.value.find("answer");
    if (answer == l.value.end()) fail(path.string(), ":", l.line, ": no \"answer\"");
    if (answer->is_string())
      row.answer = answer->get<std::string>();
    else if (!answer->is_null() || !row.error)
      fail(path.string(), ":", l.line, ": \"answer\" is ", answer->type_name(),
           ", not a string (null only with an \"error\")");
    if (const auto it = l.value.find("run"); it != l.value.end()) row.run = *it;
    if (const auto it = l.value.find("index"); it != l.value.end() && it->is_number_unsigned())
      row.index = it->get<size_t>();
    rows.push_back(std::move(row));
  }
  // Batch rows follow the order pairs finished in, which a resume or --parallel changes; their index does not.
  if (std::all_of(rows.begin(), rows.end(), [](const PredictionRow& r) { return r.index.has_value(); }))
    std::stable_sort(rows.begin(), rows.end(), [](const PredictionRow& a, const PredictionRow& b) { return *a.index < *b.index; });
  return rows;
}

Matching match_items(const std::vector<PredictionRow>& predictions, const std::vector<ReferenceRow>& references,
                     const std::string& group_by) {
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < references.size(); ++i) by_id.emplace(references[i].id, i);
  std::vector<bool> used(references.size());
  Matching m;
  for (const PredictionRow& p : predictions) {
    auto it = by_id.find(p.id);
    if (it == by_id.end() && !p.image_id.empty()) it = by_id.find(p.image_id);
    if (it == by_id.end()) {
      m.unmatched_predictions.push_back(p.id);
      continue;
    }
    const ReferenceRow& r = references[it->second];
    used[it->second] = true;
    std::string group;
    if (!group_by.empty()) {
      const auto field = r.fields.find(group_by);
      group = field == r.fields.end() || field->is_null() ? "(none)"
              : field->is_string()                        ? field->get<std::string>()
                                                          : field->dump();
    }
    m.items.push_back({p.id, group, p.answer, r.references, p.error});
  }
  for (size_t i = 0; i < references.size(); ++i)
    if (!used[i]) m.unmatched_references.push_back(references[i].id);
  return m;
}

nlohmann::ordered_json evaluate(const std::vector<PredictionRow>& predictions,
                                const std::vector<ReferenceRow>& references, const EvalOptions& o) {
  if (o.bootstrap < 0) fail("eval: --bootstrap must be 0 or more, not ", o.bootstrap);
  Matching m = match_items(predictions, references, o.group_by);
  const size_t unmatched = m.unmatched_predictions.size() + m.unmatched_references.size();
  if (unmatched > 0 && !o.allow_missing) {
    std::string message = "eval: predictions and references do not match";
    if (!m.unmatched_predictions.empty())
      message += "; " + std::to_string(m.unmatched_predictions.size()) +
                 " prediction id(s) with no reference: " + listed(m.unmatched_predictions);
    if (!m.unmatched_references.empty())
      message += "; " + std::to_string(m.unmatched_references.size()) +
                 " reference id(s) with no prediction: " + listed(m.unmatched_references);
    fail(message, " (--allow-missing scores the matched ones and lists the rest)");
  }
  if (m.items.empty()) fail("eval: no prediction matches a reference, nothing to score");

  Prepared p;
  std::vector<CaptionItem> captions;
  for (const EvalItem& item : m.items) {
    CaptionItem c{.candidate = caption_tokens(item.answer)};
    for (const std::string& r : item.references) c.references.push_back(caption_tokens(r));
    p.bleu.push_back(bleu_counts(c));
    captions.push_back(std::move(c));
    p.predicted.push_back(mentions_only(label_report(item.answer)));
    p.referenced.push_back(mentions_only(label_report(item.references.front())));
  }
  p.scores = score_captions(captions);

  ordered_json report;
  report["scores"] = "x100, rounded to 2 decimals; ci: 95% percentile bootstrap interval over items";
  add_run(report, predictions);
  report["items"] = m.items.size();
  report["uncertain"] = o.uncertain == UncertainPolicy::AsPositive ? "positive" : "negative";
  report["bootstrap"] =
      o.bootstrap == 0 ? ordered_json(nullptr) : ordered_json{{"resamples", o.bootstrap}, {"seed", o.bootstrap_seed}};
  report["unmatched_predictions"] = m.unmatched_predictions;
  report["unmatched_references"] = m.unmatched_references;
  ordered_json errored = ordered_json::array();
  for (const EvalItem& item : m.items)
    if (item.error) errored.push_back({{"id", item.id}, {"error", *item.error}});
  report["errored"] = errored;

  std::vector<size_t> all(m.items.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  report["metrics"] = metrics_json(p, all, o, 0);

  if (!o.group_by.empty()) {
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t i = 0; i < m.items.size(); ++i) groups[m.items[i].group].push_back(i);
    report["by"] = o.group_by;
    ordered_json table = ordered_json::array();
    uint64_t scope = 1;
    for (const auto& [name, items] : groups)
      table.push_back({{"name", name}, {"items", items.size()}, {"metrics", metrics_json(p, items, o, scope++)}});
    report["groups"] = table;
  }
  report["findings"] = findings_json(p, o.uncertain);

  ordered_json per_item = ordered_json::array();
  for (size_t i = 0; i < m.items.size(); ++i) {
    ordered_json row = {{"id", m.items[i].id}};
    if (!o.group_by.empty()) row[o.group_by] = m.items[i].group;
    for (size_t n = 0; n < 4; ++n) row[metric_names()[n]] = score(100 * p.scores.bleu.per_item[i][n]);
    row["ROUGE-L"] = score(100 * p.scores.rouge_l.per_item[i]);
    row["CIDEr-D"] = score(100 * p.scores.cider_d.per_item[i]);
    if (m.items[i].error) row["error"] = *m.items[i].error;
    per_item.push_back(std::move(row));
  }
  report["per_item"] = per_item;

  std::vector<size_t> order = all;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return p.scores.rouge_l.per_item[a] < p.scores.rouge_l.per_item[b]; });
  ordered_json worst = ordered_json::array();
  for (size_t k = 0; k < order.size() && k < kWorstItems; ++k) {
    const EvalItem& item = m.items[order[k]];
    worst.push_back({{"id", item.id},
                     {"ROUGE-L", score(100 * p.scores.rouge_l.per_item[order[k]])},
                     {"answer", item.answer},
                     {"reference", item.references.front()}});
  }
  report["worst_items"] = worst;
  return report;
}

bool check_baseline(nlohmann::ordered_json& report, const nlohmann::json& baseline, const std::string& source) {
  const auto metrics = baseline.find("metrics");
  if (!baseline.is_object() || metrics == baseline.end() || !metrics->is_object() || metrics->empty())
    fail(source, ": expected {\"metrics\": {\"BLEU-4\": {\"value\": 32.17, \"tolerance\": 0.5}, ...}}");
  ordered_json checks = ordered_json::object();
  bool all_pass = true;
  for (const auto& [name, spec] : metrics->items()) {
    if (!report["metrics"].contains(name)) fail(source, ": metric \"", name, "\" is not one medlab eval reports");
    const auto value = spec.find("value"), tolerance = spec.find("tolerance");
    if (!spec.is_object() || value == spec.end() || !value->is_number() || tolerance == spec.end() ||
        !tolerance->is_number() || tolerance->get<double>() < 0)
      fail(source, ": metric \"", name, "\" needs a numeric \"value\" and a \"tolerance\" of 0 or more");
    const ordered_json& found = report["metrics"][name]["value"];
    const double expected = value->get<double>(), band = tolerance->get<double>();
    // Scores are compared as reported (2 decimals); the 1e-9 absorbs binary rounding of those decimals.
    const bool pass = found.is_number() && std::abs(found.get<double>() - expected) <= band + 1e-9;
    all_pass = all_pass && pass;
    checks[name] = {{"value", found},
                    {"baseline", expected},
                    {"tolerance", band},
                    {"difference", found.is_number() ? score(found.get<double>() - expected) : ordered_json(nullptr)},
                    {"result", pass ? "PASS" : "FAIL"}};
  }
  report["baseline"] = {{"result", all_pass ? "PASS" : "FAIL"}, {"metrics", checks}};
  return all_pass;
}

nlohmann::ordered_json make_baseline(const nlohmann::ordered_json& report, std::optional<double> tolerance) {
  if (!tolerance && report["bootstrap"].is_null())
    fail("eval: --write-baseline needs --bootstrap N (the tolerance is each interval's half-width) or --tolerance");
  ordered_json metrics = ordered_json::object();
  for (const auto& [name, metric] : report["metrics"].items()) {
    if (!metric["value"].is_number()) continue;
    double band = 0;
    if (tolerance)
      band = *tolerance;
    else if (metric["ci"].is_array())
      band = round2((metric["ci"][1].get<double>() - metric["ci"][0].get<double>()) / 2);
    metrics[name] = {{"value", metric["value"]}, {"tolerance", band}};
  }
  return {{"metrics", metrics}, {"run", report["run"]}};
}

std::string metric_lines(const nlohmann::ordered_json& report) {
  const nlohmann::ordered_json* baseline = report.contains("baseline") ? &report["baseline"]["metrics"] : nullptr;
  std::string lines;
  for (const auto& [name, metric] : report["metrics"].items()) {
    std::string line = name + ": " + score_text(metric["value"]);
    if (const auto ci = metric.find("ci"); ci != metric.end() && ci->is_array())
      line += " \u00b1 " + score_text((ci->at(1).get<double>() - ci->at(0).get<double>()) / 2) + " (95% CI " +
              score_text(ci->at(0)) + " to " + score_text(ci->at(1)) + ")";
    if (baseline && baseline->contains(name))
      line += " " + (*baseline)[name]["result"].get<std::string>() + " (baseline " +
              score_text((*baseline)[name]["baseline"]) + " \u00b1 " + score_text((*baseline)[name]["tolerance"]) + ")";
    lines += line + "\n";
  }
  return lines;
}

nlohmann::json read_baseline(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("baseline file ", path.string(), ": cannot be read");
  nlohmann::json baseline = nlohmann::json::parse(in, nullptr, false);
  if (baseline.is_discarded()) fail("baseline file ", path.string(), ": not JSON");
  return baseline;
}

std::string score_text(const nlohmann::ordered_json& value) {
  if (!value.is_number()) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value.get<double>());
  return text;
}

}  // namespace medlab
