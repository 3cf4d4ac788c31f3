#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/data_uri.h"

namespace medlab::server {
namespace {

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

// The message of the ApiError that `fn` throws, after checking it is a 400 naming `param`.
template <class Fn>
std::string refusal(Fn fn, const std::string& param) {
  try {
    fn();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, param);
    return e.what();
  }
  ADD_FAILURE() << "no ApiError";
  return "";
}

TEST(Base64, RoundTripsEveryLengthModuloThree) {
  // RFC 4648's test vectors.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(encode_base64(bytes(plain)), encoded);
    EXPECT_EQ(decode_base64(encoded, "image"), bytes(plain));
  }
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[size_t(i)] = uint8_t(i);
  EXPECT_EQ(decode_base64(encode_base64(all), "image"), all);
}

TEST(Base64, RefusesWhatIsNotStrictBase64) {
  EXPECT_NE(refusal([] { decode_base64("Zm9", "image"); }, "image").find("multiple of 4"), std::string::npos);
  EXPECT_NE(refusal([] { decode_base64("Zm9v Ymk", "image"); }, "image").find("invalid base64 character"), std::string::npos);
  EXPECT_NE(refusal([] { decode_base64("Zm-v", "image"); }, "image").find("offset 2"), std::string::npos);
  EXPECT_NE(refusal([] { decode_base64("Z===", "image"); }, "image").find("invalid base64"), std::string::npos);
  EXPECT_NE(refusal([] { decode_base64("Zm=v", "image"); }, "image").find("invalid base64"), std::string::npos);
  // "Zh==" carries bits under the padding: not what any encoder writes for "f".
  EXPECT_NE(refusal([] { decode_base64("Zh==", "image"); }, "image").find("padding"), std::string::npos);
}

TEST(DataUri, ReadsMediaTypeAndPayload) {
  const DataUri uri = parse_data_uri("data:Image/PNG;name=x.png;base64,Zm9v", "image");
  EXPECT_EQ(uri.media_type, "image/png");
  EXPECT_EQ(uri.bytes, bytes("foo"));
  EXPECT_EQ(parse_data_uri("data:;base64,Zm9v", "image").media_type, "");
}

TEST(DataUri, RefusesUrlsPathsAndPlainData) {
  const std::string field = "messages[0].content[1].image_url.url";
  EXPECT_NE(refusal([&] { parse_data_uri("https://example.org/x.png", field); }, field).find("data: URIs"), std::string::npos);
  EXPECT_NE(refusal([&] { parse_data_uri("/etc/passwd", field); }, field).find("not fetched"), std::string::npos);
  EXPECT_NE(refusal([&] { parse_data_uri("data:image/png,rawbytes", field); }, field).find("base64-encoded"), std::string::npos);
  EXPECT_NE(refusal([&] { parse_data_uri("data:image/png;base64", field); }, field).find("comma"), std::string::npos);
  EXPECT_NE(refusal([&] { parse_data_uri("data:image/png;base64,", field); }, field).find("empty image"), std::string::npos);
}

}  // namespace
}  // namespace medlab::server
