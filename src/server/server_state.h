// What every request handler shares: the model, the scheduler, the options, the metrics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "repro/run_manifest.h"
#include "runtime/scheduler.h"
#include "runtime/session.h"
#include "server/api_requests.h"
#include "server/metrics.h"

namespace medlab::server {

inline constexpr const char* kResearchUseOnly = "Research software, not for diagnosis.";

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;      // empty: no authentication
  std::string cors_origin;  // empty: no Access-Control-* headers
  size_t max_body_bytes = size_t(64) << 20;
  uint64_t max_pixels = 50'000'000;
  RequestLimits limits;
  std::chrono::milliseconds time_limit{std::chrono::minutes(10)};
  int http_threads = 40;   // connections served at once; others wait for a free thread
  std::string access_log;  // a file, "-" for stdout, empty for none
};

struct ServerState {
  const LoadedModel& model;
  Scheduler& scheduler;
  ServerOptions options;
  std::string model_name;    // the folder or file name, never a full path
  std::string model_sha256;  // of the weight files, in order
  std::vector<AdapterHash> adapters;  // LoRA adapters applied to the model
  std::string isa;           // the kernel set the scheduler runs
  std::string precision;     // "fast" or "exact"
  std::string fingerprint;   // "medlab-0.1.0-<isa>"
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  Metrics metrics;
  std::atomic<bool> stopping{false};  // set on SIGINT/SIGTERM: requests in flight are cancelled
};

// The run manifest an answer carries: these weights, kernels and precision, with the request's settings.
inline nlohmann::json answer_manifest(const ServerState& state, const GenerationSettings& settings) {
  return manifest_json({state.model_sha256, state.isa, state.precision, settings, state.adapters});
}

}  // namespace medlab::server
