// The endpoints. Each reads the request, answers in `res`, and throws ApiError for a refusal (the HTTP
// layer turns it into the JSON error body).
#pragma once

#include <httplib.h>

#include "server/server_state.h"

namespace medlab::server {

void handle_health(ServerState& state, const httplib::Request& req, httplib::Response& res);
void handle_predict(ServerState& state, const httplib::Request& req, httplib::Response& res);
void handle_render(ServerState& state, const httplib::Request& req, httplib::Response& res);
void handle_chat_completions(ServerState& state, const httplib::Request& req, httplib::Response& res);
void handle_models(ServerState& state, const httplib::Request& req, httplib::Response& res);
void handle_metrics(ServerState& state, const httplib::Request& req, httplib::Response& res);

// Compact JSON, invalid UTF-8 (a token cut mid-character) replaced rather than refused.
std::string dump_json(const nlohmann::json& json);

}  // namespace medlab::server
