// JSON request bodies of /api/predict and /api/render, checked field by field into typed requests.
// Every refusal is an ApiError (400) whose message and param name the field at fault.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "imaging/region.h"
#include "runtime/session.h"
#include "server/data_uri.h"

namespace medlab::server {

// What the server allows a request to ask for.
struct RequestLimits {
  int64_t max_new_tokens = 2048;
  size_t max_images = 16;  // per chat request: each is decoded and kept as model input before the context is checked
};

// An uploaded image and how to show it to the model.
struct ImageSpec {
  std::string field;  // where it came from in the request, for messages ("image", "messages[0].content[1]...")
  DataUri data;
  std::string window = "file";  // DICOM only: dicom::parse_window's names
  uint32_t frame = 0;           // DICOM only, from 0
  std::optional<Region> region;
};

struct PredictRequest {
  std::string question;
  std::optional<ImageSpec> image;
  GenerationSettings settings;
  bool stream = false;
};

struct RenderRequest {
  ImageSpec image;
  bool model_input = false;  // "view": "model_input" (the model's 896x896 input) or "source" (default)
  bool json = false;         // "format": "json" (PNG in base64 plus the image's facts) or "png" (default)
};

// The body as a JSON object; 400 when it is not one.
nlohmann::json parse_json_object(std::string_view body);

PredictRequest parse_predict(std::string_view body, const RequestLimits& limits);
RenderRequest parse_render(std::string_view body);

// Field readers shared with the OpenAI endpoint. `path` prefixes the field name in messages. A field that
// is absent or null gives the fallback.
const nlohmann::json* find_field(const nlohmann::json& object, const std::string& name);
std::string string_field(const nlohmann::json& object, const std::string& name, const std::string& path,
                         std::optional<std::string> fallback);
int64_t integer_field(const nlohmann::json& object, const std::string& name, const std::string& path, int64_t fallback,
                      int64_t min, int64_t max);
double number_field(const nlohmann::json& object, const std::string& name, const std::string& path, double fallback,
                    double min, double max);
bool bool_field(const nlohmann::json& object, const std::string& name, const std::string& path, bool fallback);

}  // namespace medlab::server
