// POST /api/predict: one question, optionally about one image, answered whole or streamed.
#include "server/api_error.h"
#include "server/job.h"
#include "server/handlers.h"
#include "server/image_input.h"

namespace medlab::server {
namespace {

constexpr const char* kRegionNote = " (The region of interest is outlined in red.)";

nlohmann::json answer_json(const ServerState& state, const Job& g, const PredictRequest& request,
                           const std::optional<PreparedImage>& image) {
  const GenerationResult& r = g.pending->result();
  nlohmann::json tokens = nlohmann::json::array();
  for (const GeneratedToken& t : r.tokens) tokens.push_back(t.id);
  nlohmann::json out = {{"answer", r.text},
                        {"tokens", tokens},
                        {"n_tokens", r.tokens.size()},
                        {"stop_reason", r.stop_reason},
                        {"timings", timings_json(g)},
                        {"seed", request.settings.sampler.seed},
                        {"model_sha256", state.model_sha256},
                        {"prompt_tokens", g.prompt_tokens},
                        {"run", answer_manifest(state, request.settings)},
                        {"research_use_only", kResearchUseOnly}};
  if (image) out["image"] = image_json(image->image);
  return out;
}

std::string event(const char* name, const nlohmann::json& data) {
  return std::string("event: ") + name + "\ndata: " + dump_json(data) + "\n\n";
}

}  // namespace

void handle_predict(ServerState& state, const httplib::Request& req, httplib::Response& res) {
  const auto received = std::chrono::steady_clock::now();
  auto request = std::make_shared<PredictRequest>(parse_predict(req.body, state.options.limits));
  std::optional<PreparedImage> image;
  std::vector<ModelInput> inputs;
  std::string content = request->question;
  if (request->image) {
    image = prepare_image(*request->image, state, true);
    inputs.push_back(std::move(*image->input));
    image->input.reset();
    if (request->image->region) content += kRegionNote;
    content += "<start_of_image>";  // after the question, as the model card orders them
  }
  const std::string prompt = render_chat({{"user", content}});
  auto g = submit_generation(state, "question", prompt, std::move(inputs), request->settings, received);
  if (!request->stream) {
    wait_finished(state, *g);
    res.set_content(dump_json(answer_json(state, *g, *request, image)), "application/json");
    return;
  }
  auto shared_image = std::make_shared<std::optional<PreparedImage>>(std::move(image));
  stream_events(
      res, state, g,
      [](const PendingRequest::Update& update) {
        return update.text.empty() ? std::string() : event("token", {{"text", update.text}});
      },
      [&state, g, request, shared_image] {
        if (auto error = result_error(*g)) {
          state.metrics.record_stream_error();
          return event("error", error_json(error->what(), error->type, error->param));
        }
        return event("done", answer_json(state, *g, *request, *shared_image));
      });
}

}  // namespace medlab::server
