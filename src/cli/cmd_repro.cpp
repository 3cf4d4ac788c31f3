// medlab repro: one experiment file, one command — check the environment, verify the weights, answer the test
// set with the fixed seed, score it, and write reports/ with the manifest of everything used. --resume continues
// an interrupted experiment from the rows already written.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "cli/command_support.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/sha256.h"
#include "eval/evaluation.h"
#include "eval/html_report.h"
#include "repro/batch.h"
#include "repro/results_file.h"
#include "repro/weights_lock.h"

namespace medlab::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

constexpr int kBaselineFailed = 3;  // as medlab eval

struct ReproCommand {
  std::string experiment;
  bool resume = false;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
};

// The experiment file, its paths taken from its own folder. Fields: docs/EVALUATION.md, "medlab repro".
struct Experiment {
  json raw;
  fs::path model, mmproj, test_set, weights_lock, env_lock, baseline, reports;
  GenerationSettings generation;
  std::string window = "file", precision = "exact", by, uncertain = "positive";
  int parallel = 4, bootstrap = 1000;
  int64_t ctx_size = 4096;
  uint64_t bootstrap_seed = 0;
};

template <typename T>
T field(const json& j, const char* name, T fallback, const std::string& source) {
  if (!j.contains(name)) return fallback;
  try {
    return j[name].get<T>();
  } catch (const json::exception&) {
    fail(source, ": field \"", name, "\" has the wrong type (", j[name].dump(), ")");
  }
}

Experiment read_experiment(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open the experiment file");
  Experiment e;
  e.raw = json::parse(in, nullptr, false);
  if (e.raw.is_discarded() || !e.raw.is_object()) fail(path, ": not a JSON object");
  static const std::set<std::string> known = {"name", "model", "mmproj", "test_set", "weights_lock", "env_lock",
                                               "baseline", "reports", "generation", "window", "precision", "parallel",
                                               "ctx_size", "eval"};
  for (const auto& [key, value] : e.raw.items())
    if (!known.count(key)) fail(path, ": unknown field \"", key, "\" (docs/EVALUATION.md lists the fields)");
  const fs::path here = fs::path(path).parent_path();
  const auto path_field = [&](const char* name, bool required) -> fs::path {
    const std::string value = field<std::string>(e.raw, name, "", path);
    if (value.empty() && required) fail(path, ": field \"", name, "\" is required");
    if (value.empty()) return {};
    return (fs::path(value).is_absolute() ? fs::path(value) : here / value).lexically_normal();
  };
  e.model = path_field("model", true);
  e.mmproj = path_field("mmproj", false);
  e.test_set = path_field("test_set", true);
  e.weights_lock = path_field("weights_lock", false);
  e.env_lock = path_field("env_lock", false);
  e.baseline = path_field("baseline", false);
  e.reports = path_field("reports", false);
  if (e.reports.empty()) e.reports = (here / "reports").lexically_normal();
  const json g = field<json>(e.raw, "generation", json::object(), path);
  e.generation.sampler.seed = field<uint64_t>(g, "seed", 0, path);
  e.generation.sampler.temperature = field<float>(g, "temperature", 0, path);
  e.generation.sampler.top_k = field<int32_t>(g, "top_k", 0, path);
  e.generation.sampler.top_p = field<float>(g, "top_p", 1, path);
  e.generation.max_new_tokens = field<int64_t>(g, "max_new_tokens", 256, path);
  e.window = field<std::string>(e.raw, "window", e.window, path);
  e.precision = field<std::string>(e.raw, "precision", e.precision, path);
  if (e.precision != "exact" && e.precision != "fast") fail(path, ": field \"precision\" is exact or fast");
  e.parallel = std::clamp(field<int>(e.raw, "parallel", e.parallel, path), 1, 64);
  e.ctx_size = field<int64_t>(e.raw, "ctx_size", e.ctx_size, path);
  const json ev = field<json>(e.raw, "eval", json::object(), path);
  e.by = field<std::string>(ev, "by", "category", path);
  e.bootstrap = field<int>(ev, "bootstrap", e.bootstrap, path);
  e.bootstrap_seed = field<uint64_t>(ev, "bootstrap_seed", 0, path);
  e.uncertain = field<std::string>(ev, "uncertain", e.uncertain, path);
  return e;
}

std::string file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open to hash");
  Sha256 sha;
  std::vector<char> buffer(size_t(1) << 20);
  while (in.read(buffer.data(), std::streamsize(buffer.size())) || in.gcount() > 0) sha.update(buffer.data(), size_t(in.gcount()));
  return sha.hex_digest();
}

// Step 1: differences from the environment lock are reported, not fatal: results may still reproduce, and
// the manifest says what differed.
ordered_json check_environment_step(const Experiment& e) {
  const Environment here = this_machine();
  ordered_json out = {{"here", environment_json(here)}};
  if (e.env_lock.empty()) {
    std::printf("[1/5] environment: %s, %s kernels (no env_lock in the experiment)\n", engine_name().c_str(), here.isa.c_str());
    return out;
  }
  const std::vector<EnvironmentDifference> differences = check_environment(read_environment_lock(e.env_lock), here);
  const size_t changing = std::count_if(differences.begin(), differences.end(), [](const auto& d) { return d.changes_results; });
  std::printf("[1/5] environment: %s\n", differences.empty() ? "matches the lock"
                                         : changing ? "DIFFERS from the lock in what can change results"
                                                    : "matches the lock in what can change results");
  out["lock"] = e.env_lock.string();
  out["differences"] = json::array();
  for (const EnvironmentDifference& d : differences) {
    std::printf("      %s\n", difference_line(d).c_str());
    out["differences"].push_back(difference_line(d));
  }
  return out;
}

// Step 2: weights that differ from the lock end the experiment: its numbers would be of another model.
ordered_json verify_weights_step(const Experiment& e, const LoadedModel& model, const WeightHashes& hashes,
                                 ThreadPool& pool, const KernelTable& kernels) {
  ordered_json out = {{"model_sha256", hashes.model_sha256}, {"files", json::array()}};
  for (const WeightFileHash& f : hashes.files)
    out["files"].push_back({{"name", fs::path(f.path).filename().string()}, {"size", f.size}, {"sha256", f.sha256}});
  if (e.weights_lock.empty()) {
    std::printf("[2/5] weights: model sha256 %s (no weights_lock in the experiment)\n", hashes.model_sha256.c_str());
    return out;
  }
  const WeightsLock locked = read_lock(e.weights_lock);
  const WeightsLock found =
      make_lock(hashes, model.checkpoint.dir(), behavioural_fingerprint(model, pool, kernels), locked.tolerance);
  const std::vector<std::string> differences = lock_differences(compare_lock(locked, found, locked.tolerance));
  for (const std::string& d : differences) std::printf("      %s\n", d.c_str());
  if (!differences.empty()) fail("repro: the weights do not match ", e.weights_lock.string(), " (", differences.size(),
                                 " differences); the experiment stops before answering anything");
  std::printf("[2/5] weights: PASS against %s (sha256 of every file, fingerprint %s)\n", e.weights_lock.string().c_str(),
              six_decimals(found.fingerprint.top3_logit_l2).c_str());
  out["lock"] = e.weights_lock.string();
  out["fingerprint_top3_logit_l2"] = six_decimals(found.fingerprint.top3_logit_l2);
  return out;
}

void repro(const ReproCommand& o) {
  const Experiment e = read_experiment(o.experiment);
  const fs::path annotations = e.test_set / "annotations.jsonl";
  if (!fs::exists(annotations)) fail(e.test_set.string(), ": no annotations.jsonl (a test set folder; see medlab make-test-set)");
  const fs::path predictions = e.reports / "predictions.jsonl";
  if (!o.resume && fs::exists(predictions) && fs::file_size(predictions) > 0)
    fail(predictions.string(), ": already holds answers; pass --resume to continue that experiment, or remove reports/");
  fs::create_directories(e.reports);
  std::printf("medlab repro: %s (research software, not for diagnosis)\n", o.experiment.c_str());

  ordered_json manifest = {{"experiment", e.raw}, {"experiment_file", o.experiment}};
  manifest["environment"] = check_environment_step(e);
  std::fflush(stdout);  // the steps' lines stay in order with the progress on stderr

  const KernelTable& kernels = best_kernels();
  ThreadPool pool(o.threads);
  const std::unique_ptr<LoadedModel> model = load_cli_model(e.model.string(), e.mmproj.string(), "");
  const WeightHashes hashes = hash_weights(model->checkpoint);  // every byte: this is a check, not bookkeeping
  manifest["weights"] = verify_weights_step(e, *model, hashes, pool, kernels);
  std::fflush(stdout);

  const std::vector<WorkItem> work = work_from_manifest(annotations, {});
  BatchOptions options;
  options.image_read.dicom_window = e.window;
  options.manifest = {hashes.model_sha256, isa_name(kernels.isa), e.precision, e.generation, hashes.adapters};
  options.pairs_total = work.size();
  const PairsToDo todo = pairs_to_do(work, predictions, options.manifest);
  Progress progress("medlab repro", todo.pending.size());
  run_batch(*model, pool, kernels, todo.pending, options, e.parallel, e.ctx_size, predictions,
            [&](const json& row) { progress.row_done(!row["error"].is_null()); });
  std::printf("[3/5] answers: %zu pairs (%zu answered now, %zu before, %zu errors) in %s\n", work.size(),
              todo.pending.size(), work.size() - todo.pending.size(), progress.errors(), predictions.string().c_str());

  const EvalOptions eval_options{.group_by = e.by,
                                 .bootstrap = e.bootstrap,
                                 .bootstrap_seed = e.bootstrap_seed,
                                 .uncertain = e.uncertain == "negative" ? UncertainPolicy::AsNegative : UncertainPolicy::AsPositive};
  ordered_json report = evaluate(read_predictions(predictions), read_references(annotations), eval_options);
  const bool passed = e.baseline.empty() || check_baseline(report, read_baseline(e.baseline), e.baseline.string());
  std::printf("[4/5] scores: %zu items, x100, 95%% CI from %d resamples%s\n", report["items"].get<size_t>(), e.bootstrap,
              e.baseline.empty() ? " (no baseline in the experiment)" : (", against " + e.baseline.string()).c_str());
  std::printf("%s", metric_lines(report).c_str());

  write_text_file(e.reports / "metrics.json", report.dump(2) + "\n");
  write_text_file(e.reports / "report.html", html_report(report, utc_timestamp()));
  manifest["test_set"] = {{"annotations", annotations.string()}, {"annotations_sha256", file_sha256(annotations)},
                          {"pairs", work.size()}};
  manifest["run"] = manifest_json(options.manifest);
  manifest["result"] = e.baseline.empty() ? "no baseline" : passed ? "PASS" : "FAIL";
  manifest["finished"] = utc_timestamp();
  write_text_file(e.reports / "manifest.json", manifest.dump(2) + "\n");
  std::printf("[5/5] reports: %s (metrics.json, report.html, manifest.json, predictions.jsonl)\n", e.reports.string().c_str());
  std::fflush(stdout);
  if (!passed) {
    std::fprintf(stderr, "medlab repro: FAIL: a metric is outside its baseline band\n");
    throw CLI::RuntimeError(kBaselineFailed);
  }
}

}  // namespace

void register_repro(CLI::App& app) {
  auto o = std::make_shared<ReproCommand>();
  CLI::App* cmd = app.add_subcommand(
      "repro",
      "Reproduce an experiment in one command: environment check, weight verification, answers over the test set\n"
      "with the fixed seed, scores with bootstrap intervals, and reports/ (metrics.json, report.html, manifest.json).\n"
      "Exit codes: 0 ok, 1 an error or weights that do not match the lock, 3 a metric outside its baseline band.\n"
      "The experiment file's fields are in docs/EVALUATION.md. Research software, not for diagnosis.");
  cmd->add_option("experiment", o->experiment, "The experiment file (JSON)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--resume", o->resume, "Continue an interrupted experiment: answers already in reports/ are kept");
  cmd->add_option("-t,--threads", o->threads, "Compute threads (results do not depend on it)")->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->callback([o] { repro(*o); });
}

}  // namespace medlab::cli
