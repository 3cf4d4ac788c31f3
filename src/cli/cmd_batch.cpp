// medlab batch: every (image, question) pair of a folder or manifest answered into a JSON Lines file, a row
// per pair written to disk as it finishes, resumable after a crash and splittable into shards.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "cli/model_files.h"
#include "repro/batch.h"
#include "repro/results_file.h"
#include "repro/weights.h"

namespace medlab::cli {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct BatchCommand {
  std::string model, mmproj, quant;
  std::string images_dir, manifest;
  std::vector<std::string> questions;
  std::string questions_file;
  std::string out;
  bool resume = false;
  std::string shard = "0/1";
  ImageReadOptions image_read;
  GenerationSettings generation;
  int parallel = 4;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  int64_t ctx_size = 4096;
  std::string precision = "fast";
  std::string isa;
};

std::string duration_text(double seconds) {
  char text[32];
  const long s = long(seconds + 0.5);
  if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%lds", s);
  return text;
}

// A bar redrawn in place on a terminal; elsewhere (logs, Slurm) a plain line every 30 seconds.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total), terminal_(::isatty(STDERR_FILENO)) {}

  void row_done(bool error) {
    ++done_;
    errors_ += error;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    if (!terminal_ && done_ != total_ && elapsed - last_line_ < 30) return;
    last_line_ = elapsed;
    const double rate = done_ / std::max(elapsed, 1e-9);
    const std::string eta = duration_text(double(total_ - done_) / std::max(rate, 1e-9));
    if (terminal_) {
      const int width = 30, filled = int(width * done_ / std::max<size_t>(total_, 1));
      std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.2f pairs/s  ETA %s  errors %zu ", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), done_, total_, rate, eta.c_str(), errors_);
      if (done_ == total_) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "medlab batch: %zu/%zu pairs, %.2f pairs/s, ETA %s, %zu errors\n", done_, total_, rate,
                   eta.c_str(), errors_);
    }
  }
  size_t errors() const { return errors_; }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  size_t total_, done_ = 0, errors_ = 0;
  bool terminal_;
  Clock::time_point start_ = Clock::now();
  double last_line_ = 0;
};

// The pairs this shard still owes: those without a row in --out. The rows there must be this run's: the
// same pairs, model and settings; anything else would mix two runs in one file.
std::vector<WorkItem> still_to_do(const std::vector<WorkItem>& mine, const BatchCommand& o, const RunManifest& manifest) {
  if (!o.resume || !fs::exists(o.out)) return mine;
  const ResultRows existing = read_result_rows(o.out);
  if (existing.torn_tail)
    std::fprintf(stderr, "medlab batch: %s: its last row was cut off by the interruption; that pair runs again\n", o.out.c_str());
  std::map<std::string, const WorkItem*> by_id;
  for (const WorkItem& item : mine) by_id[item.id] = &item;
  const nlohmann::json settings = manifest_json(manifest);
  std::set<std::string> done;
  for (size_t i = 0; i < existing.rows.size(); ++i) {
    const nlohmann::json& row = existing.rows[i];
    const std::string where = o.out + ":" + std::to_string(i + 1);
    const std::string id = row["id"].get<std::string>();
    const auto item = by_id.find(id);
    if (item == by_id.end() || row.value("index", size_t(-1)) != item->second->index)
      fail(where, ": pair ", id, " is not part of this run (other --images, --manifest, --questions or --shard?); "
           "resume with the same inputs, or write to another --out");
    const nlohmann::json& run = row.value("run", nlohmann::json::object());
    for (const char* field : {"model_sha256", "seed", "sampler", "max_new_tokens", "stop", "precision"})
      if (run.value(field, nlohmann::json()) != settings[field])
        fail(where, ": made with ", field, " ", run.value(field, nlohmann::json()).dump(), ", this run has ",
             settings[field].dump(), "; resume with the same model and settings, or write to another --out");
    if (!done.insert(id).second) std::fprintf(stderr, "medlab batch: %s: pair %s has a second row\n", where.c_str(), id.c_str());
  }
  std::vector<WorkItem> rest;
  for (const WorkItem& item : mine)
    if (!done.count(item.id)) rest.push_back(item);
  return rest;
}

void batch(BatchCommand o) {
  if (o.images_dir.empty() == o.manifest.empty()) fail("batch: give exactly one of --images or --manifest");
  if (!o.questions.empty() && !o.questions_file.empty()) fail("batch: give --question or --questions, not both");
  if (!o.questions_file.empty()) o.questions = read_questions(o.questions_file);
  const Shard shard = parse_shard(o.shard);
  if (!o.resume && fs::exists(o.out) && fs::file_size(o.out) > 0)
    fail(o.out, ": already holds results; pass --resume to continue that run, or choose another --out");

  size_t skipped = 0;
  const std::vector<WorkItem> all = o.images_dir.empty() ? work_from_manifest(o.manifest, o.questions)
                                                         : work_from_folder(o.images_dir, o.questions, skipped);
  if (skipped) std::fprintf(stderr, "medlab batch: %zu files in %s are not images by name; skipped\n", skipped, o.images_dir.c_str());
  if (all.empty()) fail(o.images_dir, ": no PNG, JPEG or DICOM files in this folder");
  const std::vector<WorkItem> mine = shard_work(all, shard);

  const KernelTable& kernels = o.isa.empty() ? best_kernels() : kernels_for(o.isa);
  const std::unique_ptr<LoadedModel> model = load_cli_model(o.model, o.mmproj, o.quant);
  const WeightHashes hashes = hash_weights(model->checkpoint, [](uint64_t done, uint64_t total) {
    if (total > (uint64_t(1) << 30)) std::fprintf(stderr, "medlab batch: hashing weights %.0f%%\n", 100.0 * double(done) / double(total));
  }, weight_hash_cache());

  BatchOptions options;
  options.image_read = o.image_read;
  options.manifest = {hashes.model_sha256, isa_name(kernels.isa), o.precision, o.generation};
  options.pairs_total = all.size();
  options.shard = shard;
  const std::vector<WorkItem> pending = still_to_do(mine, o, options.manifest);
  std::fprintf(stderr, "medlab batch: %zu pairs in the run, %zu in shard %s, %zu already done, %zu to answer\n", all.size(),
               mine.size(), shard.text().c_str(), mine.size() - pending.size(), pending.size());

  ResultsFile results(o.out, o.resume);
  ThreadPool pool(o.threads);
  Scheduler::Options scheduler_options;
  scheduler_options.parallel = o.parallel;
  scheduler_options.max_queue = size_t(o.parallel) + 8;
  scheduler_options.n_ctx = std::min(o.ctx_size, model->decoder.config().max_position_embeddings);
  scheduler_options.precision = o.precision == "exact" ? Precision::Exact : Precision::Fast;
  Scheduler scheduler(*model, pool, kernels, scheduler_options);

  Progress progress(pending.size());
  run_batch(*model, scheduler, pending, options, [&](const nlohmann::json& row) {
    results.append(row);
    const bool error = !row["error"].is_null();
    if (error) std::fprintf(stderr, "%smedlab batch: %s: %s\n", ::isatty(STDERR_FILENO) ? "\n" : "",
                            row["id"].get<std::string>().c_str(), row["error"].get<std::string>().c_str());
    progress.row_done(error);
  });
  std::fprintf(stderr, "medlab batch: done: %zu pairs answered in %s (%.2f pairs/s), %zu with errors, %zu done before; rows in %s\n",
               pending.size() - progress.errors(), duration_text(progress.seconds()).c_str(),
               double(pending.size()) / std::max(progress.seconds(), 1e-9), progress.errors(), mine.size() - pending.size(),
               o.out.c_str());
}

}  // namespace

void register_batch(CLI::App& app) {
  auto o = std::make_shared<BatchCommand>();
  CLI::App* cmd = app.add_subcommand(
      "batch", "Answer every (image, question) pair of a folder or manifest, one JSON line per pair in --out, each written "
               "to disk as it finishes; --resume continues an interrupted run, --shard I/N splits it across machines "
               "(join the parts with medlab merge). Research software, not for diagnosis.");
  cmd->add_option("-m,--model", o->model, "Model folder (Hugging Face layout), a cached Hugging Face id, or a llama.cpp "
                  "gemma3 .gguf file")->required();
  cmd->add_option("--mmproj", o->mmproj, "With a .gguf model: its llama.cpp vision projector (mmproj .gguf)")->check(CLI::ExistingFile);
  cmd->add_option("--quant", o->quant, "Quantize the decoder's matrices at load: q8_0, q4_0, q4_k, q5_k, q6_k or nf4")
      ->check(CLI::IsMember({"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "nf4"}));
  cmd->add_option("--images", o->images_dir, "Folder of images (PNG, JPEG, DICOM; searched recursively, in path order)");
  cmd->add_option("--manifest", o->manifest, "JSON Lines or CSV listing images: file (relative to the manifest), and "
                  "optionally id, question, window");
  cmd->add_option("-q,--question", o->questions, "A question asked of every image (repeatable)");
  cmd->add_option("--questions", o->questions_file, "File of questions, one per line, each asked of every image");
  cmd->add_option("-o,--out", o->out, "Results file (JSON Lines), appended to row by row")->required();
  cmd->add_flag("--resume", o->resume, "Continue the run in --out: pairs with a row are skipped, never repeated");
  cmd->add_option("--shard", o->shard, "Answer only shard I of N (pairs whose index % N == I; I from 0)")->capture_default_str();
  cmd->add_option("--window", o->image_read.dicom_window, "DICOM window: file, file:N, full, lung, mediastinum, bone, "
                  "brain, abdomen, soft-tissue, C,W, ct-rgb, cxr (a manifest's window column wins)")->capture_default_str();
  cmd->add_option("--frame", o->image_read.dicom_frame, "DICOM frame, counted from 0")->capture_default_str();
  cmd->add_option("--max-pixels", o->image_read.decode.max_pixels, "Refuse images with more pixels than this")->capture_default_str();
  cmd->add_option("-n,--max-new-tokens", o->generation.max_new_tokens, "Most tokens per answer")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", o->generation.sampler.temperature, "Sampling temperature; 0 is greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->generation.sampler.top_k, "Keep the k most likely tokens (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->generation.sampler.top_p, "Keep the smallest set of tokens whose probability reaches p")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", o->generation.sampler.min_p, "Drop tokens less likely than min-p times the most likely")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repetition-penalty", o->generation.sampler.repetition_penalty, "Penalty for tokens already seen (1: off)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->generation.sampler.seed, "Seed of the sampler (the same for every pair, so a row can be "
                  "reproduced with medlab run --seed)")->capture_default_str();
  cmd->add_option("--stop", o->generation.stop_strings, "Stop before this text (repeatable)");
  cmd->add_option("--parallel", o->parallel, "Pairs generating at once (batched decoding; answers do not depend on it)")
      ->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("-t,--threads", o->threads, "Compute threads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx_size, "Context per pair in tokens (prompt + answer)")->capture_default_str()->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--precision", o->precision, "Quantized weights: fast (int8 activations) or exact (dequantized to f32)")
      ->capture_default_str()->check(CLI::IsMember({"exact", "fast"}));
  cmd->add_option("--isa", o->isa, "Force a kernel set: scalar, avx2 or avx512 (default: the best this CPU runs)");
  cmd->callback([o] { batch(*o); });
}

}  // namespace medlab::cli
