#include "server/api_requests.h"

#include <cmath>
#include <limits>

#include "imaging/dicom_render.h"
#include "server/api_error.h"

namespace medlab::server {
namespace {

// JSON has one number type; an integer field must hold a whole number.
int64_t as_integer(const nlohmann::json& value, const std::string& name) {
  if (value.is_number_integer()) {
    if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad_request(name, name, ": ", value.dump(), " is too large");
    return value.get<int64_t>();
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::floor(d) == d && std::abs(d) < 9.0e15) return int64_t(d);
  }
  bad_request(name, name, ": expected an integer, not ", value.dump());
}

Region parse_region(const nlohmann::json& object, const std::string& name) {
  if (!object.is_object()) bad_request(name, name, ": expected an object {\"x\", \"y\", \"width\", \"height\"}");
  const int64_t big = int64_t(1) << 31;
  Region r;
  r.x = integer_field(object, "x", name + ".", -1, -big, big);
  r.y = integer_field(object, "y", name + ".", -1, -big, big);
  r.width = integer_field(object, "width", name + ".", -1, 1, big);
  r.height = integer_field(object, "height", name + ".", -1, 1, big);
  for (const char* key : {"x", "y", "width", "height"})
    if (!find_field(object, key)) bad_request(name + "." + key, name, ".", key, ": required");
  return r;
}

ImageSpec parse_image(const nlohmann::json& body) {
  ImageSpec spec;
  spec.field = "image";
  spec.data = parse_data_uri(string_field(body, "image", "", std::nullopt), "image");
  spec.window = string_field(body, "window", "", "file");
  try {
    dicom::parse_window(spec.window);
  } catch (const Error& e) {
    bad_request("window", "window: ", e.what());
  }
  spec.frame = uint32_t(integer_field(body, "frame", "", 0, 0, std::numeric_limits<uint32_t>::max()));
  if (const nlohmann::json* region = find_field(body, "region")) spec.region = parse_region(*region, "region");
  return spec;
}

}  // namespace

nlohmann::json parse_json_object(std::string_view body) {
  nlohmann::json json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded()) bad_request("", "request body: malformed JSON");
  if (!json.is_object()) bad_request("", "request body: expected a JSON object");
  return json;
}

const nlohmann::json* find_field(const nlohmann::json& object, const std::string& name) {
  const auto it = object.find(name);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string string_field(const nlohmann::json& object, const std::string& name, const std::string& path,
                         std::optional<std::string> fallback) {
  const std::string full = path + name;
  const nlohmann::json* value = find_field(object, name);
  if (!value) {
    if (!fallback) bad_request(full, full, ": required");
    return *fallback;
  }
  if (!value->is_string()) bad_request(full, full, ": expected a string");
  return value->get<std::string>();
}

int64_t integer_field(const nlohmann::json& object, const std::string& name, const std::string& path, int64_t fallback,
                      int64_t min, int64_t max) {
  const std::string full = path + name;
  const nlohmann::json* value = find_field(object, name);
  if (!value) return fallback;
  const int64_t v = as_integer(*value, full);
  if (v < min || v > max) bad_request(full, full, ": ", v, " is outside ", min, "..", max);
  return v;
}

double number_field(const nlohmann::json& object, const std::string& name, const std::string& path, double fallback,
                    double min, double max) {
  const std::string full = path + name;
  const nlohmann::json* value = find_field(object, name);
  if (!value) return fallback;
  if (!value->is_number()) bad_request(full, full, ": expected a number");
  const double v = value->get<double>();
  if (!(v >= min && v <= max)) bad_request(full, full, ": ", v, " is outside ", min, "..", max);
  return v;
}

bool bool_field(const nlohmann::json& object, const std::string& name, const std::string& path, bool fallback) {
  const std::string full = path + name;
  const nlohmann::json* value = find_field(object, name);
  if (!value) return fallback;
  if (!value->is_boolean()) bad_request(full, full, ": expected true or false");
  return value->get<bool>();
}

PredictRequest parse_predict(std::string_view body_text, const RequestLimits& limits) {
  const nlohmann::json body = parse_json_object(body_text);
  PredictRequest r;
  r.question = string_field(body, "question", "", std::nullopt);
  if (r.question.find_first_not_of(" \t\r\n") == std::string::npos) bad_request("question", "question: must not be empty");
  if (find_field(body, "image")) {
    r.image = parse_image(body);
  } else {
    for (const char* key : {"window", "frame", "region"})
      if (find_field(body, key)) bad_request(key, key, ": applies to an image, and the request has none");
  }
  r.settings.max_new_tokens = integer_field(body, "max_new_tokens", "", std::min<int64_t>(512, limits.max_new_tokens), 1,
                                            limits.max_new_tokens);
  r.settings.sampler.seed = uint64_t(integer_field(body, "seed", "", 0, 0, std::numeric_limits<int64_t>::max()));
  r.settings.sampler.temperature = float(number_field(body, "temperature", "", 0.0, 0.0, 2.0));
  r.settings.sampler.top_p = float(number_field(body, "top_p", "", 1.0, 0.0, 1.0));
  r.stream = bool_field(body, "stream", "", false);
  return r;
}

RenderRequest parse_render(std::string_view body_text) {
  const nlohmann::json body = parse_json_object(body_text);
  RenderRequest r;
  r.image = parse_image(body);
  const std::string view = string_field(body, "view", "", "source");
  if (view != "source" && view != "model_input") bad_request("view", "view: \"source\" or \"model_input\", not \"", view, "\"");
  r.model_input = view == "model_input";
  const std::string format = string_field(body, "format", "", "png");
  if (format != "png" && format != "json") bad_request("format", "format: \"png\" or \"json\", not \"", format, "\"");
  r.json = format == "json";
  return r;
}

}  // namespace medlab::server
