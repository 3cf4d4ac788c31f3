// Images arrive inside JSON as data: URIs with base64 payloads; nothing is ever fetched or read from disk.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace medlab::server {

// Strict base64 (RFC 4648 section 4): the standard alphabet, length a multiple of 4, '=' only as the final
// one or two characters, no whitespace, and zero bits where padding leaves some over. Throws ApiError (400)
// naming `field`.
std::vector<uint8_t> decode_base64(std::string_view text, const std::string& field);
std::string encode_base64(std::span<const uint8_t> bytes);

struct DataUri {
  std::string media_type;  // lower case, without parameters; "" when the URI names none
  std::vector<uint8_t> bytes;
};

// "data:<media type>[;param=value...];base64,<payload>". Anything else (http:, file:, paths, a data: URI
// without ;base64) is refused with 400 naming `field`.
DataUri parse_data_uri(std::string_view uri, const std::string& field);

}  // namespace medlab::server
