// The errors the API answers with: an HTTP status, an OpenAI-style type and the request field at fault.
#pragma once

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace medlab::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string type, std::string param, const std::string& message)
      : Error(message), status(status), type(std::move(type)), param(std::move(param)) {}
  int status;
  std::string type;   // invalid_request_error, authentication_error, not_found, server_busy, server_error
  std::string param;  // the field at fault; empty when none
};

// bad_request("question", "must be a non-empty string") -> 400 naming the field.
template <class... Parts>
[[noreturn]] void bad_request(const std::string& param, const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw ApiError(400, "invalid_request_error", param, message.str());
}

// {"error": {"message", "type", "param"}}; param is null when empty.
inline nlohmann::json error_json(const std::string& message, const std::string& type, const std::string& param) {
  return {{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? nlohmann::json() : nlohmann::json(param)}}}};
}

}  // namespace medlab::server
