// OpenAI's chat completions format: requests with text and data: URI images become a Gemma 3 chat prompt;
// answers and stream chunks are written in OpenAI's shapes so its client libraries work unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/session.h"
#include "server/api_requests.h"
#include "tokenizer/chat_template.h"

namespace medlab::server {

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;  // images already replaced by "<start_of_image>" where they stood
  std::vector<ImageSpec> images;      // in the order of their markers
  GenerationSettings settings;
  bool logprobs = false;
  int32_t top_logprobs = 0;  // alternatives per token in the answer, 0..20
  bool stream = false;
};

// Parses a /v1/chat/completions body. OpenAI's defaults apply (temperature 1, top_p 1); the seed defaults
// to 0 so that an answer can be repeated.
ChatRequest parse_chat(std::string_view body, const RequestLimits& limits);

// The prompt text of the conversation: the Gemma 3 chat template, with the generation prompt.
std::string chat_prompt_text(const ChatRequest& request);

// "length" when generation ran out of room (max_new_tokens, context, time limit), else "stop".
std::string finish_reason(const std::string& stop_reason);

// choices[0].logprobs: one entry per token with its text, UTF-8 bytes and the top alternatives.
nlohmann::json logprobs_json(const std::vector<GeneratedToken>& tokens, const Tokenizer& tokenizer, size_t top_logprobs);

// What every chat answer and chunk shares.
struct ChatIdentity {
  std::string id;  // "chatcmpl-..."
  int64_t created = 0;
  std::string model;
  std::string fingerprint;  // "medlab-0.1.0-<isa>"
};

nlohmann::json chunk_json(const ChatIdentity& who, const nlohmann::json& delta, const nlohmann::json& finish_reason);

}  // namespace medlab::server
