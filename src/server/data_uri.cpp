#include "server/data_uri.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "server/api_error.h"

namespace medlab::server {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_values() {
  std::array<int8_t, 256> values{};
  values.fill(-1);
  for (int i = 0; i < 64; ++i) values[uint8_t(kAlphabet[i])] = int8_t(i);
  return values;
}
constexpr std::array<int8_t, 256> kValues = make_values();

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

}  // namespace

std::vector<uint8_t> decode_base64(std::string_view text, const std::string& field) {
  if (text.size() % 4 != 0) bad_request(field, field, ": base64 length ", text.size(), " is not a multiple of 4");
  const size_t padding = text.empty() ? 0 : text.back() != '=' ? 0 : text[text.size() - 2] == '=' ? 2 : 1;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const size_t data = last ? 4 - padding : 4;
    uint32_t group = 0;
    for (size_t k = 0; k < 4; ++k) {
      const int8_t v = k < data ? kValues[uint8_t(text[i + k])] : 0;
      if (v < 0) bad_request(field, field, ": invalid base64 character at offset ", i + k);
      group = group << 6 | uint32_t(v);
    }
    // Canonical encodings leave the bits under the padding zero; anything else is a corrupted payload.
    if (last && ((padding == 1 && (group & 0xff)) || (padding == 2 && (group & 0xffff))))
      bad_request(field, field, ": invalid base64 padding");
    out.push_back(uint8_t(group >> 16));
    if (data > 2) out.push_back(uint8_t(group >> 8));
    if (data > 3) out.push_back(uint8_t(group));
  }
  return out;
}

std::string encode_base64(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    const uint32_t group = uint32_t(bytes[i]) << 16 | (n > 1 ? uint32_t(bytes[i + 1]) << 8 : 0) | (n > 2 ? bytes[i + 2] : 0);
    out += kAlphabet[group >> 18 & 63];
    out += kAlphabet[group >> 12 & 63];
    out += n > 1 ? kAlphabet[group >> 6 & 63] : '=';
    out += n > 2 ? kAlphabet[group & 63] : '=';
  }
  return out;
}

DataUri parse_data_uri(std::string_view uri, const std::string& field) {
  if (lower(uri.substr(0, 5)) != "data:")
    bad_request(field, field, ": images must be data: URIs (data:image/png;base64,...); URLs and paths are not fetched");
  const size_t comma = uri.find(',');
  if (comma == std::string_view::npos) bad_request(field, field, ": data: URI without a comma before its payload");
  const std::string header = lower(uri.substr(5, comma - 5));
  if (header.size() < 7 || header.compare(header.size() - 7, 7, ";base64") != 0)
    bad_request(field, field, ": data: URI must be base64-encoded (data:<type>;base64,...)");
  DataUri out;
  out.media_type = header.substr(0, header.find(';'));
  out.bytes = decode_base64(uri.substr(comma + 1), field);
  if (out.bytes.empty()) bad_request(field, field, ": empty image");
  return out;
}

}  // namespace medlab::server
