// Answering a batch run's pairs through the Scheduler, several at a time (continuous batching gives each
// pair the same tokens it would get alone), with one result row per pair as it finishes.
#pragma once

#include <filesystem>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "repro/batch_work.h"
#include "repro/run_manifest.h"
#include "runtime/images.h"
#include "runtime/scheduler.h"

namespace medlab {

struct BatchOptions {
  ImageReadOptions image_read;  // --window (a manifest row's own window wins), --frame, --max-pixels
  RunManifest manifest;         // its generation settings answer every pair; every row carries it
  size_t pairs_total = 0;       // pairs in the whole run, before sharding
  Shard shard;
};

// The pairs of `mine` that have no row in `out` yet (all of them when it does not exist). The rows there must be
// this run's — the same pairs, model and settings — or this fails naming the file and line: resuming into
// another run's file would mix two runs in one.
struct PairsToDo {
  std::vector<WorkItem> pending;
  bool torn_tail = false;             // the last row was cut off by an interruption; its pair runs again
  std::vector<std::string> repeated;  // "file:line: id" of rows for a pair already seen
};
PairsToDo pairs_to_do(const std::vector<WorkItem>& mine, const std::filesystem::path& out, const RunManifest& manifest);

// Answers `pending` through a Scheduler with `parallel` slots of `ctx_size` tokens each, appending each pair's
// row to `out` (cut back to its last whole row first) before on_row (on this thread) sees it. The row:
//   index, pairs, shard, id, image_id, file, question, answer, tokens (ids), n_tokens, stop_reason,
//   inference_time_sec, timestamp (UTC, ISO 8601), seed, model_sha256, and for images pixel_sha256,
//   dicom_pixel_sha256 (DICOM only) and image {width, height, source}; error (null, or why the pair has no answer), run (the
//   manifest).
// A file that cannot be read, a manifest line in error or a prompt too long for the context gives a row
// with its error; the run goes on.
void run_batch(const LoadedModel& model, ThreadPool& pool, const KernelTable& kernels, const std::vector<WorkItem>& pending,
               const BatchOptions& options, int parallel, int64_t ctx_size, const std::filesystem::path& out,
               const std::function<void(const nlohmann::json& row)>& on_row);

}  // namespace medlab
