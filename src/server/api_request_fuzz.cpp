// Any bytes as the body of /api/predict, /api/render and /v1/chat/completions: a typed request within the
// server's limits, or a 400 ApiError.
#include "fuzz_support.h"
#include "server/api_error.h"
#include "server/api_requests.h"
#include "server/openai.h"

namespace {

void require_bad_request(const medlab::server::ApiError& e) {
  medlab::fuzz::require(e.status == 400 && !std::string_view(e.what()).empty(), "a refusal that is not a 400 with a message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const medlab::server::RequestLimits limits{.max_new_tokens = 512};
  try {
    const auto request = medlab::server::parse_predict(body, limits);
    medlab::fuzz::require(request.settings.max_new_tokens <= limits.max_new_tokens, "max_new_tokens over the limit");
  } catch (const medlab::server::ApiError& e) {
    require_bad_request(e);
  }
  try {
    medlab::server::parse_render(body);
  } catch (const medlab::server::ApiError& e) {
    require_bad_request(e);
  }
  try {
    const auto chat = medlab::server::parse_chat(body, limits);
    medlab::fuzz::require(chat.settings.max_new_tokens <= limits.max_new_tokens, "max_tokens over the limit");
    medlab::server::chat_prompt_text(chat);
  } catch (const medlab::server::ApiError& e) {
    require_bad_request(e);
  }
  return 0;
}
