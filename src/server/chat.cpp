// POST /v1/chat/completions (OpenAI compatible) and GET /v1/models.
#include <atomic>
#include <chrono>
#include <cstdio>

#include "server/api_error.h"
#include "server/job.h"
#include "server/handlers.h"
#include "server/image_input.h"
#include "server/openai.h"

namespace medlab::server {
namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Unique within the process and unlikely to repeat across restarts.
std::string completion_id() {
  static std::atomic<uint64_t> counter{0};
  char id[64];
  std::snprintf(id, sizeof id, "chatcmpl-%llx%06llx", (unsigned long long)unix_now(), (unsigned long long)counter.fetch_add(1));
  return id;
}

std::string data_line(const nlohmann::json& json) { return "data: " + dump_json(json) + "\n\n"; }

nlohmann::json medlab_json(const ServerState& state, const Job& g, const ChatRequest& request) {
  return {{"seed", request.settings.sampler.seed},
          {"model_sha256", state.model_sha256},
          {"timings", timings_json(g)},
          {"stop_reason", g.pending->result().stop_reason},
          {"run", answer_manifest(state, request.settings)},
          {"research_use_only", kResearchUseOnly}};
}

nlohmann::json usage_json(const Job& g) {
  const size_t completion = g.pending->result().tokens.size();
  return {{"prompt_tokens", g.prompt_tokens}, {"completion_tokens", completion}, {"total_tokens", g.prompt_tokens + completion}};
}

}  // namespace

void handle_chat_completions(ServerState& state, const httplib::Request& req, httplib::Response& res) {
  const auto received = std::chrono::steady_clock::now();
  auto request = std::make_shared<ChatRequest>(parse_chat(req.body, state.options.limits));
  std::vector<ModelInput> inputs;
  for (const ImageSpec& spec : request->images) inputs.push_back(std::move(*prepare_image(spec, state, true).input));
  auto g = submit_generation(state, "messages", chat_prompt_text(*request), std::move(inputs), request->settings, received);
  const ChatIdentity who{completion_id(), unix_now(), state.model_name, state.fingerprint};
  if (!request->stream) {
    wait_finished(state, *g);
    const GenerationResult& r = g->pending->result();
    const nlohmann::json logprobs =
        request->logprobs ? logprobs_json(r.tokens, state.model.tokenizer, size_t(request->top_logprobs)) : nlohmann::json();
    const nlohmann::json out = {
        {"id", who.id},
        {"object", "chat.completion"},
        {"created", who.created},
        {"model", who.model},
        {"system_fingerprint", who.fingerprint},
        {"choices",
         {{{"index", 0},
           {"message", {{"role", "assistant"}, {"content", r.text}}},
           {"finish_reason", finish_reason(r.stop_reason)},
           {"logprobs", logprobs}}}},
        {"usage", usage_json(*g)},
        {"medlab", medlab_json(state, *g, *request)}};
    res.set_content(dump_json(out), "application/json");
    return;
  }
  auto sent_role = std::make_shared<bool>(false);
  stream_events(
      res, state, g,
      [&state, who, request, sent_role](const PendingRequest::Update& update) {
        std::string out;
        if (!*sent_role) {
          *sent_role = true;
          out += data_line(chunk_json(who, {{"role", "assistant"}, {"content", ""}}, nullptr));
        }
        if (!update.text.empty() || (request->logprobs && !update.tokens.empty())) {
          nlohmann::json chunk = chunk_json(who, {{"content", update.text}}, nullptr);
          if (request->logprobs)
            chunk["choices"][0]["logprobs"] = logprobs_json(update.tokens, state.model.tokenizer, size_t(request->top_logprobs));
          out += data_line(chunk);
        }
        return out;
      },
      [&state, who, g, request] {
        std::string out;
        if (auto error = result_error(*g)) {
          state.metrics.record_stream_error();
          out += data_line(error_json(error->what(), error->type, error->param));
        } else {
          nlohmann::json last = chunk_json(who, nlohmann::json::object(), finish_reason(g->pending->result().stop_reason));
          last["usage"] = usage_json(*g);
          last["medlab"] = medlab_json(state, *g, *request);
          out += data_line(last);
        }
        return out + "data: [DONE]\n\n";
      });
}

void handle_models(ServerState& state, const httplib::Request&, httplib::Response& res) {
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch() - (std::chrono::steady_clock::now() - state.started))
                              .count();
  const nlohmann::json out = {
      {"object", "list"},
      {"data", {{{"id", state.model_name}, {"object", "model"}, {"created", created}, {"owned_by", "medlab"}}}}};
  res.set_content(dump_json(out), "application/json");
}

}  // namespace medlab::server
