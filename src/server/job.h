// A generation job: one request through the scheduler, shared by /api/predict and /v1/chat/completions: the
// prompt checked and submitted, updates awaited (with metrics), and Server-Sent Events for streaming.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/server_state.h"

namespace medlab::server {

// Bytes a streaming response wrote, on this connection's thread, for the access log and metrics.
inline thread_local size_t streamed_bytes = 0;

struct Job {
  std::shared_ptr<PendingRequest> pending;
  size_t prompt_tokens = 0;
  std::chrono::steady_clock::time_point received;
  bool saw_first_token = false;
};

// Expands the image markers of `prompt_text` (a rendered chat), tokenizes and submits it. Throws ApiError
// naming `prompt_field` (where the prompt came from): 400 when markers and images disagree, 413 when the
// prompt does not fit the context; 503 when the queue is full.
std::shared_ptr<Job> submit_generation(ServerState& state, const std::string& prompt_field, const std::string& prompt_text,
                                              std::vector<ModelInput> images, const GenerationSettings& settings,
                                              std::chrono::steady_clock::time_point received);

// The next update (empty after `timeout`), recording the time to the first token and the token rate.
// Cancels the request when the server is shutting down.
PendingRequest::Update next_update(ServerState& state, Job& job, std::chrono::milliseconds timeout);

// Waits for the whole answer. Throws ApiError when the scheduler reports a failure (see result_error).
void wait_finished(ServerState& state, Job& job);

// The error of a finished request that failed ("error": 500, "shutdown": 503), or nullopt.
std::optional<ApiError> result_error(const Job& job);

// "timings": {queue_ms, image_ms, prefill_ms, decode_ms, total_ms, tokens_per_s}.
nlohmann::json timings_json(const Job& job);

// Streams text/event-stream: `on_update` turns each update into bytes to send (it may return ""),
// `on_finish` writes the last event. A failed write or a closed connection cancels the request.
void stream_events(httplib::Response& res, ServerState& state, std::shared_ptr<Job> job,
                   std::function<std::string(const PendingRequest::Update&)> on_update,
                   std::function<std::string()> on_finish);

}  // namespace medlab::server
