#include "repro/batch.h"

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "core/error.h"
#include "repro/results_file.h"
#include "tokenizer/chat_template.h"

namespace medlab {
namespace {

nlohmann::json row_base(const WorkItem& item, const BatchOptions& options) {
  return {{"index", item.index},
          {"pairs", options.pairs_total},
          {"shard", options.shard.text()},
          {"id", item.id},
          {"image_id", item.image_id},
          {"file", item.file.empty() ? nlohmann::json() : nlohmann::json(item.file)},
          {"question", item.question},
          {"timestamp", utc_timestamp()},
          {"seed", options.manifest.generation.sampler.seed},
          {"model_sha256", options.manifest.model_sha256},
          {"error", nullptr},
          {"run", manifest_json(options.manifest)}};
}

nlohmann::json error_row(const WorkItem& item, const BatchOptions& options, const std::string& error) {
  nlohmann::json row = row_base(item, options);
  row["answer"] = nullptr;
  row["error"] = error;
  return row;
}

struct InFlight {
  WorkItem item;
  PromptImage image;
  std::shared_ptr<PendingRequest> pending;
};

// Reads the pair's image and queues its prompt. Returns false when the scheduler's queue is full.
bool submit(const LoadedModel& model, Scheduler& scheduler, const WorkItem& item, const BatchOptions& options,
            std::deque<InFlight>& in_flight, const std::function<void(const nlohmann::json&)>& on_row) {
  if (!item.error.empty()) {
    on_row(error_row(item, options, item.error));
    return true;
  }
  try {
    ServeRequest request;
    PromptImage image;
    if (item.file.empty()) {
      request.prompt = model.tokenizer.encode(render_chat({{"user", item.question}}), false);  // starts with <bos>
    } else {
      if (!model.vision) fail("this model (", model.checkpoint.config().architecture, ") has no vision tower and cannot take images");
      ImageReadOptions read = options.image_read;
      if (!item.window.empty()) read.dicom_window = item.window;
      image = read_prompt_image(item.file, read);
      size_t markers = 0;
      const std::string text = expand_image_markers(render_chat({{"user", item.question + "<start_of_image>"}}),
                                                    model.vision->tokens_per_image(), markers);
      request.prompt = model.tokenizer.encode(text, false);
      request.images = preprocess_image(image.rgb, preprocess_options_for(*model.vision));
    }
    request.settings = options.manifest.generation;
    request.time_limit = std::chrono::hours(24 * 365);  // a batch pair runs to its end
    if (int64_t(request.prompt.size()) >= scheduler.options().n_ctx)
      fail("the prompt's ", request.prompt.size(), " tokens do not fit the context of ", scheduler.options().n_ctx,
           " tokens (--ctx-size)");
    auto pending = scheduler.submit(std::move(request));
    if (!pending) return false;
    in_flight.push_back({item, std::move(image), std::move(pending)});
  } catch (const Error& e) {
    on_row(error_row(item, options, e.what()));
  }
  return true;
}

nlohmann::json answer_row(const InFlight& done, const BatchOptions& options) {
  const PendingRequest& p = *done.pending;
  const GenerationResult& r = p.result();
  if (r.stop_reason == "error") return error_row(done.item, options, p.error());
  nlohmann::json row = row_base(done.item, options);
  nlohmann::json tokens = nlohmann::json::array();
  for (const GeneratedToken& t : r.tokens) tokens.push_back(t.id);
  row["answer"] = r.text;
  row["tokens"] = tokens;
  row["n_tokens"] = r.tokens.size();
  row["stop_reason"] = r.stop_reason;
  row["inference_time_sec"] = (p.image_ms() + r.prefill_ms + r.decode_ms) / 1000.0;
  if (done.item.file.empty()) return row;
  row["pixel_sha256"] = pixel_sha256(done.image.rgb);
  if (done.image.dicom_pixel_sha256) row["dicom_pixel_sha256"] = *done.image.dicom_pixel_sha256;
  row["image"] = {{"width", done.image.rgb.width}, {"height", done.image.rgb.height}, {"source", done.image.source}};
  return row;
}

// Every pair of `pending` answered through `scheduler`, each row to on_row as it finishes.
void answer_pairs(const LoadedModel& model, Scheduler& scheduler, const std::vector<WorkItem>& pending,
                  const BatchOptions& options, const std::function<void(const nlohmann::json& row)>& on_row) {
  // Enough queued beyond the slots that a slot freed is refilled at once, few enough that little is in memory.
  const size_t window = size_t(scheduler.options().parallel) + 2;
  std::deque<InFlight> in_flight;
  size_t next = 0;
  while (next < pending.size() || !in_flight.empty()) {
    while (next < pending.size() && in_flight.size() < window &&
           submit(model, scheduler, pending[next], options, in_flight, on_row))
      ++next;
    bool finished_any = false;
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->pending->wait(std::chrono::milliseconds(0)).finished) {
        const std::string& reason = it->pending->result().stop_reason;
        // A pair stopped from outside (shutdown) has no row: a resumed run answers it again.
        if (reason != "shutdown" && reason != "cancelled") on_row(answer_row(*it, options));
        it = in_flight.erase(it);
        finished_any = true;
      } else {
        ++it;
      }
    }
    if (!finished_any) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

PairsToDo pairs_to_do(const std::vector<WorkItem>& mine, const std::filesystem::path& out, const RunManifest& manifest) {
  PairsToDo result;
  if (!std::filesystem::exists(out)) {
    result.pending = mine;
    return result;
  }
  const ResultRows existing = read_result_rows(out);
  result.torn_tail = existing.torn_tail;
  std::map<std::string, const WorkItem*> by_id;
  for (const WorkItem& item : mine) by_id[item.id] = &item;
  const nlohmann::json settings = manifest_json(manifest);
  std::set<std::string> done;
  for (size_t i = 0; i < existing.rows.size(); ++i) {
    const nlohmann::json& row = existing.rows[i];
    const std::string where = out.string() + ":" + std::to_string(i + 1);
    const std::string id = row["id"].get<std::string>();
    const auto item = by_id.find(id);
    if (item == by_id.end() || row.value("index", size_t(-1)) != item->second->index)
      fail(where, ": pair ", id, " is not part of this run (other images, manifest, questions or shard?); "
           "resume with the same inputs, or write to another file");
    const nlohmann::json& run = row.value("run", nlohmann::json::object());
    // "adapters" is absent from both when there are none.
    for (const char* field : {"model_sha256", "seed", "sampler", "max_new_tokens", "stop", "precision", "adapters"})
      if (run.value(field, nlohmann::json()) != settings.value(field, nlohmann::json()))
        fail(where, ": made with ", field, " ", run.value(field, nlohmann::json()).dump(), ", this run has ",
             settings.value(field, nlohmann::json()).dump(), "; resume with the same model and settings, or write to another file");
    if (!done.insert(id).second) result.repeated.push_back(where + ": " + id);
  }
  for (const WorkItem& item : mine)
    if (!done.count(item.id)) result.pending.push_back(item);
  return result;
}

void run_batch(const LoadedModel& model, ThreadPool& pool, const KernelTable& kernels, const std::vector<WorkItem>& pending,
               const BatchOptions& options, int parallel, int64_t ctx_size, const std::filesystem::path& out,
               const std::function<void(const nlohmann::json& row)>& on_row) {
  ResultsFile results(out, true);
  Scheduler::Options scheduler_options;
  scheduler_options.parallel = parallel;
  scheduler_options.max_queue = size_t(parallel) + 8;
  scheduler_options.n_ctx = std::min(ctx_size, model.decoder.config().max_position_embeddings);
  scheduler_options.precision = options.manifest.precision == "exact" ? Precision::Exact : Precision::Fast;
  Scheduler scheduler(model, pool, kernels, scheduler_options);
  answer_pairs(model, scheduler, pending, options, [&](const nlohmann::json& row) {
    results.append(row);
    on_row(row);
  });
}

}  // namespace medlab
