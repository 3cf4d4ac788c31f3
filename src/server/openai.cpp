#include "server/openai.h"

#include <algorithm>
#include <limits>

#include "server/api_error.h"

namespace medlab::server {
namespace {

std::string trim(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(space);
  return begin == std::string::npos ? "" : s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

// A message's content as the Gemma 3 template writes it: a string as is, or its parts in order, each text
// trimmed and each image becoming "<start_of_image>".
std::string message_content(const nlohmann::json& content, const std::string& path, bool images_allowed,
                            size_t max_images, std::vector<ImageSpec>& images) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad_request(path, path, ": expected a string or an array of content parts");
  std::string out;
  for (size_t i = 0; i < content.size(); ++i) {
    const nlohmann::json& part = content[i];
    const std::string where = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) bad_request(where, where, ": expected an object with \"type\"");
    const std::string type = string_field(part, "type", where + ".", std::nullopt);
    if (type == "text") {
      out += trim(string_field(part, "text", where + ".", std::nullopt));
    } else if (type == "image_url") {
      if (!images_allowed) bad_request(where, where, ": images belong in user messages");
      if (images.size() == max_images)
        bad_request(where, where, ": more than ", max_images, " images in one request (the server's --max-images)");
      const nlohmann::json* url = find_field(part, "image_url");
      if (!url) bad_request(where + ".image_url", where, ".image_url: required");
      const std::string field = where + ".image_url.url";
      // OpenAI accepts {"url": "..."}; a bare string is a common shorthand.
      const std::string uri = url->is_string() ? url->get<std::string>() : string_field(*url, "url", where + ".image_url.", std::nullopt);
      ImageSpec spec;
      spec.field = field;
      spec.data = parse_data_uri(uri, field);
      images.push_back(std::move(spec));
      out += "<start_of_image>";
    } else {
      bad_request(where + ".type", where, ".type: \"text\" or \"image_url\", not \"", type, "\"");
    }
  }
  return out;
}

}  // namespace

ChatRequest parse_chat(std::string_view body_text, const RequestLimits& limits) {
  const nlohmann::json body = parse_json_object(body_text);
  ChatRequest r;
  r.model = string_field(body, "model", "", "");
  const nlohmann::json* messages = find_field(body, "messages");
  if (!messages) bad_request("messages", "messages: required");
  if (!messages->is_array() || messages->empty()) bad_request("messages", "messages: expected a non-empty array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const nlohmann::json& m = (*messages)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad_request(path, path, ": expected an object with \"role\" and \"content\"");
    const std::string role = string_field(m, "role", path + ".", std::nullopt);
    if (role != "system" && role != "user" && role != "assistant" && role != "developer")
      bad_request(path + ".role", path, ".role: \"system\", \"user\" or \"assistant\", not \"", role, "\"");
    const nlohmann::json* content = find_field(m, "content");
    if (!content) bad_request(path + ".content", path, ".content: required");
    // OpenAI's newer "developer" role is its system message under another name.
    r.messages.push_back({role == "developer" ? "system" : role, message_content(*content, path + ".content", role == "user", limits.max_images, r.images)});
  }
  try {
    chat_prompt_text(r);  // the template's own checks: roles alternating after an optional system message
  } catch (const Error& e) {
    bad_request("messages", "messages: ", e.what());
  }
  const int64_t max_tokens = find_field(body, "max_completion_tokens")
      ? integer_field(body, "max_completion_tokens", "", 0, 1, limits.max_new_tokens)
      : integer_field(body, "max_tokens", "", std::min<int64_t>(256, limits.max_new_tokens), 1, limits.max_new_tokens);
  r.settings.max_new_tokens = max_tokens;
  r.settings.sampler.temperature = float(number_field(body, "temperature", "", 1.0, 0.0, 2.0));
  r.settings.sampler.top_p = float(number_field(body, "top_p", "", 1.0, 0.0, 1.0));
  r.settings.sampler.seed = uint64_t(integer_field(body, "seed", "", 0, 0, std::numeric_limits<int64_t>::max()));
  if (const nlohmann::json* stop = find_field(body, "stop")) {
    if (stop->is_string()) {
      r.settings.stop_strings.push_back(stop->get<std::string>());
    } else if (stop->is_array() && stop->size() <= 4) {
      for (const nlohmann::json& s : *stop) {
        if (!s.is_string()) bad_request("stop", "stop: expected strings");
        r.settings.stop_strings.push_back(s.get<std::string>());
      }
    } else {
      bad_request("stop", "stop: expected a string or an array of up to 4 strings");
    }
    for (const std::string& s : r.settings.stop_strings)
      if (s.empty()) bad_request("stop", "stop: empty strings cannot stop anything");
  }
  r.logprobs = bool_field(body, "logprobs", "", false);
  r.top_logprobs = int32_t(integer_field(body, "top_logprobs", "", 0, 0, 20));
  if (r.top_logprobs > 0 && !r.logprobs) bad_request("top_logprobs", "top_logprobs: needs \"logprobs\": true");
  // GenerationSettings::logprobs counts alternatives; asking for at least one records the chosen token's too.
  r.settings.logprobs = r.logprobs ? std::max(r.top_logprobs, 1) : 0;
  r.stream = bool_field(body, "stream", "", false);
  return r;
}

std::string chat_prompt_text(const ChatRequest& request) { return render_chat(request.messages); }

std::string finish_reason(const std::string& stop_reason) {
  return stop_reason == "max_new_tokens" || stop_reason == "context" || stop_reason == "time_limit" ? "length" : "stop";
}

nlohmann::json logprobs_json(const std::vector<GeneratedToken>& tokens, const Tokenizer& tokenizer, size_t top_logprobs) {
  const auto entry = [&](TokenId id, float logprob) {
    const std::string text = tokenizer.piece(id);
    nlohmann::json bytes = nlohmann::json::array();
    for (unsigned char c : text) bytes.push_back(int(c));
    return nlohmann::json{{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
  };
  nlohmann::json content = nlohmann::json::array();
  for (const GeneratedToken& t : tokens) {
    nlohmann::json item = entry(t.id, t.logprob);
    item["top_logprobs"] = nlohmann::json::array();
    for (size_t k = 0; k < std::min(top_logprobs, t.top.size()); ++k) item["top_logprobs"].push_back(entry(t.top[k].first, t.top[k].second));
    content.push_back(std::move(item));
  }
  return {{"content", content}};
}

nlohmann::json chunk_json(const ChatIdentity& who, const nlohmann::json& delta, const nlohmann::json& finish_reason) {
  return {{"id", who.id},
          {"object", "chat.completion.chunk"},
          {"created", who.created},
          {"model", who.model},
          {"system_fingerprint", who.fingerprint},
          {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish_reason}}}}};
}

}  // namespace medlab::server
