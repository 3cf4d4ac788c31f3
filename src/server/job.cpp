#include "server/job.h"

#include "server/api_error.h"

namespace medlab::server {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

}  // namespace

std::shared_ptr<Job> submit_generation(ServerState& state, const std::string& prompt_field, const std::string& prompt_text,
                                              std::vector<ModelInput> images, const GenerationSettings& settings,
                                              Clock::time_point received) {
  const LoadedModel& model = state.model;
  size_t markers = 0;
  const std::string text =
      model.vision ? expand_image_markers(prompt_text, model.vision->tokens_per_image(), markers) : prompt_text;
  if (markers != images.size())
    bad_request(prompt_field, prompt_field, ": ", markers, " <start_of_image> markers for ", images.size(), " images");
  ServeRequest request;
  request.prompt = model.tokenizer.encode(text, false);  // the rendered chat starts with <bos>
  request.images = std::move(images);
  request.settings = settings;
  request.time_limit = state.options.time_limit;
  const int64_t n_ctx = state.scheduler.options().n_ctx;
  if (int64_t(request.prompt.size()) >= n_ctx)
    throw ApiError(413, "invalid_request_error", prompt_field,
                   prompt_field + ": the prompt's " + std::to_string(request.prompt.size()) + " tokens do not fit the context of " +
                       std::to_string(n_ctx) + " tokens (--ctx-size)");
  auto job = std::make_shared<Job>();
  job->prompt_tokens = request.prompt.size();
  job->received = received;
  try {
    job->pending = state.scheduler.submit(std::move(request));
  } catch (const Error& e) {
    bad_request(prompt_field, e.what());
  }
  if (!job->pending)
    throw ApiError(503, "server_busy", "", "the server is busy: " + std::to_string(state.scheduler.options().max_queue) +
                                               " requests are already waiting; retry shortly");
  return job;
}

PendingRequest::Update next_update(ServerState& state, Job& g, std::chrono::milliseconds timeout) {
  if (state.stopping) g.pending->cancel();
  PendingRequest::Update update = g.pending->wait(timeout);
  if (!update.tokens.empty()) {
    if (!g.saw_first_token) {
      g.saw_first_token = true;
      state.metrics.record_first_token(ms_since(g.received) / 1000.0);
    }
    state.metrics.record_tokens(update.tokens.size(), Clock::now());
  }
  return update;
}

void wait_finished(ServerState& state, Job& g) {
  while (!next_update(state, g, std::chrono::milliseconds(500)).finished) {
  }
  if (auto error = result_error(g)) throw *error;
}

std::optional<ApiError> result_error(const Job& g) {
  const std::string& reason = g.pending->result().stop_reason;
  if (reason == "error") return ApiError(500, "server_error", "", "generation failed: " + g.pending->error());
  if (reason == "shutdown") return ApiError(503, "server_busy", "", "the server is shutting down");
  return std::nullopt;
}

nlohmann::json timings_json(const Job& g) {
  const GenerationResult& r = g.pending->result();
  return {{"queue_ms", g.pending->queue_ms()},
          {"image_ms", g.pending->image_ms()},
          {"prefill_ms", r.prefill_ms},
          {"decode_ms", r.decode_ms},
          {"total_ms", ms_since(g.received)},
          {"tokens_per_s", r.decode_ms > 0 ? 1000.0 * double(r.decode_steps) / r.decode_ms : 0.0}};
}

void stream_events(httplib::Response& res, ServerState& state, std::shared_ptr<Job> job,
                   std::function<std::string(const PendingRequest::Update&)> on_update,
                   std::function<std::string()> on_finish) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // proxies must not hold events back
  auto last_write = std::make_shared<Clock::time_point>(Clock::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [&state, job, on_update, on_finish, last_write](size_t, httplib::DataSink& sink) {
        if (!sink.is_writable()) {
          job->pending->cancel();
          return false;
        }
        const PendingRequest::Update update = next_update(state, *job, std::chrono::milliseconds(200));
        std::string out = on_update(update);
        if (update.finished) out += on_finish();
        // A comment now and then, so that a client that went away is noticed while the request waits.
        if (out.empty() && Clock::now() - *last_write > std::chrono::seconds(2)) out = ": waiting\n\n";
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) {
            job->pending->cancel();
            return false;
          }
          streamed_bytes += out.size();
          *last_write = Clock::now();
        }
        if (update.finished) sink.done();
        return true;
      },
      [job](bool success) {
        if (!success) job->pending->cancel();
      });
}

}  // namespace medlab::server
