// Any bytes as base64 and as a data: URI. Strict base64 has one spelling per byte string, so whatever
// decodes must encode back to the same text.
#include <cctype>
#include <string>

#include "fuzz_support.h"
#include "server/api_error.h"
#include "server/data_uri.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto bytes = medlab::server::decode_base64(text, "image");
    medlab::fuzz::require(medlab::server::encode_base64(bytes) == text, "base64 does not round-trip");
  } catch (const medlab::server::ApiError& e) {
    medlab::fuzz::require(e.status == 400 && e.param == "image", "base64 refused without a 400 naming the field");
  }
  try {
    const auto uri = medlab::server::parse_data_uri(text, "image_url.url");
    std::string scheme(text.substr(0, 5));  // schemes are case-insensitive (RFC 3986)
    for (char& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
    medlab::fuzz::require(scheme == "data:", "a URI other than data: was accepted");
    medlab::fuzz::require(uri.media_type.find(';') == std::string::npos, "media type keeps its parameters");
  } catch (const medlab::server::ApiError& e) {
    medlab::fuzz::require(e.status == 400 && e.param == "image_url.url", "data URI refused without a 400 naming the field");
  }
  return 0;
}
