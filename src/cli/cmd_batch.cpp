// medlab batch: every (image, question) pair of a folder or manifest answered into a JSON Lines file, a row
// per pair written to disk as it finishes, resumable after a crash and splittable into shards.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "cli/command_support.h"
#include "cli/progress.h"
#include "core/error.h"
#include "repro/batch.h"
#include "repro/weights.h"

namespace medlab::cli {
namespace {
namespace fs = std::filesystem;

struct BatchCommand {
  std::string model, mmproj, quant;
  AdapterArgs adapters;
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
  const std::unique_ptr<LoadedModel> model = load_cli_model(o.model, o.mmproj, o.quant, o.adapters);
  const WeightHashes hashes = hash_weights(model->checkpoint, [](uint64_t done, uint64_t total) {
    if (total > (uint64_t(1) << 30)) std::fprintf(stderr, "medlab batch: hashing weights %.0f%%\n", 100.0 * double(done) / double(total));
  }, weight_hash_cache());

  BatchOptions options;
  options.image_read = o.image_read;
  options.manifest = {hashes.model_sha256, isa_name(kernels.isa), o.precision, o.generation, hashes.adapters};
  options.pairs_total = all.size();
  options.shard = shard;
  const PairsToDo todo = o.resume ? pairs_to_do(mine, o.out, options.manifest) : PairsToDo{mine};
  if (todo.torn_tail)
    std::fprintf(stderr, "medlab batch: %s: its last row was cut off by the interruption; that pair runs again\n", o.out.c_str());
  for (const std::string& repeated : todo.repeated) std::fprintf(stderr, "medlab batch: %s has a second row\n", repeated.c_str());
  const size_t done_before = mine.size() - todo.pending.size();
  std::fprintf(stderr, "medlab batch: %zu pairs in the run, %zu in shard %s, %zu already done, %zu to answer\n", all.size(),
               mine.size(), shard.text().c_str(), done_before, todo.pending.size());

  ThreadPool pool(o.threads);
  Progress progress("medlab batch", todo.pending.size());
  run_batch(*model, pool, kernels, todo.pending, options, o.parallel, o.ctx_size, o.out, [&](const nlohmann::json& row) {
    const bool error = !row["error"].is_null();
    if (error) std::fprintf(stderr, "%smedlab batch: %s: %s\n", progress.terminal() ? "\n" : "",
                            row["id"].get<std::string>().c_str(), row["error"].get<std::string>().c_str());
    progress.row_done(error);
  });
  std::fprintf(stderr, "medlab batch: done: %zu pairs answered in %s (%.2f pairs/s), %zu with errors, %zu done before; rows in %s\n",
               todo.pending.size() - progress.errors(), duration_text(progress.seconds()).c_str(),
               double(todo.pending.size()) / std::max(progress.seconds(), 1e-9), progress.errors(), done_before, o.out.c_str());
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
  add_adapter_options(*cmd, o->adapters);
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
  cmd->add_option("--precision", o->precision, "fast (as llama.cpp: int8 activations against quantized weights, bf16 "
                  "against bf16 weights; vision attention in bf16 with AVX512-BF16) or exact (f32 throughout)")
      ->capture_default_str()->check(CLI::IsMember({"exact", "fast"}));
  cmd->add_option("--isa", o->isa, "Force a kernel set: scalar, avx2, avx512 or amx (default: the best this CPU runs)");
  cmd->callback([o] { batch(*o); });
}

}  // namespace medlab::cli
