// GET /api/health and GET /metrics: what the server runs and how busy it is.
#include "core/build_info.h"
#include "server/handlers.h"

namespace medlab::server {

std::string dump_json(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void handle_health(ServerState& state, const httplib::Request&, httplib::Response& res) {
  const Scheduler::Stats stats = state.scheduler.stats();
  const nlohmann::json out = {
      {"status", "ok"},
      {"model", state.model_name},
      {"model_sha256", state.model_sha256},
      {"engine", engine_name()},
      {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - state.started).count()},
      {"queue_depth", stats.queued},
      {"active", stats.active},
      {"parallel", state.scheduler.options().parallel},
      {"vision", state.model.vision != nullptr},
      {"image_size", state.model.vision ? state.model.vision->image_size() : 0},
      {"test_model", state.model.test_model_note.has_value()},
      {"research_use_only", kResearchUseOnly}};
  res.set_content(dump_json(out), "application/json");
}

void handle_metrics(ServerState& state, const httplib::Request&, httplib::Response& res) {
  const Scheduler::Stats stats = state.scheduler.stats();
  const Metrics::Gauges gauges{stats.queued, stats.active, stats.prompt_tokens, stats.generated_tokens};
  res.set_content(state.metrics.render(gauges, std::chrono::steady_clock::now()), "text/plain; version=0.0.4");
}

}  // namespace medlab::server
