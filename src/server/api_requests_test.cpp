#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/api_requests.h"

namespace medlab::server {
namespace {

const RequestLimits kLimits{.max_new_tokens = 100};

// Checks that parse_predict refuses `body` with a 400 naming `param` and a message containing `words`.
void expect_refused(const std::string& body, const std::string& param, const std::string& words) {
  try {
    parse_predict(body, kLimits);
    ADD_FAILURE() << body << ": accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, param) << body;
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << body << ": " << e.what();
  }
}

TEST(PredictRequest, DefaultsFollowTheContract) {
  const PredictRequest r = parse_predict(R"({"question": "Any effusion?"})", kLimits);
  EXPECT_EQ(r.question, "Any effusion?");
  EXPECT_FALSE(r.image);
  EXPECT_EQ(r.settings.max_new_tokens, 100);  // 512, capped by the server's limit
  EXPECT_EQ(r.settings.sampler.temperature, 0.0f);
  EXPECT_EQ(r.settings.sampler.top_p, 1.0f);
  EXPECT_EQ(r.settings.sampler.seed, 0u);
  EXPECT_FALSE(r.stream);
}

TEST(PredictRequest, ReadsEveryField) {
  const PredictRequest r = parse_predict(
      R"({"question": "q", "image": "data:image/png;base64,Zm9v", "window": "40,400", "frame": 2,
          "region": {"x": 1, "y": 2, "width": 30, "height": 40}, "max_new_tokens": 7, "seed": 9,
          "temperature": 0.5, "top_p": 0.9, "stream": true})",
      kLimits);
  ASSERT_TRUE(r.image);
  EXPECT_EQ(r.image->data.media_type, "image/png");
  EXPECT_EQ(r.image->window, "40,400");
  EXPECT_EQ(r.image->frame, 2u);
  ASSERT_TRUE(r.image->region);
  EXPECT_EQ(r.image->region->x, 1);
  EXPECT_EQ(r.image->region->height, 40);
  EXPECT_EQ(r.settings.max_new_tokens, 7);
  EXPECT_EQ(r.settings.sampler.seed, 9u);
  EXPECT_FLOAT_EQ(r.settings.sampler.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.settings.sampler.top_p, 0.9f);
  EXPECT_TRUE(r.stream);
}

TEST(PredictRequest, EachBadFieldIsNamed) {
  expect_refused("{", "", "malformed JSON");
  expect_refused("[1]", "", "JSON object");
  expect_refused("{}", "question", "question: required");
  expect_refused(R"({"question": 5})", "question", "expected a string");
  expect_refused(R"({"question": "  "})", "question", "must not be empty");
  expect_refused(R"({"question": "q", "max_new_tokens": 0})", "max_new_tokens", "outside 1..100");
  expect_refused(R"({"question": "q", "max_new_tokens": 101})", "max_new_tokens", "outside 1..100");
  expect_refused(R"({"question": "q", "max_new_tokens": 1.5})", "max_new_tokens", "expected an integer");
  expect_refused(R"({"question": "q", "seed": -1})", "seed", "outside");
  expect_refused(R"({"question": "q", "temperature": "hot"})", "temperature", "expected a number");
  expect_refused(R"({"question": "q", "top_p": 1.5})", "top_p", "outside");
  expect_refused(R"({"question": "q", "stream": "yes"})", "stream", "true or false");
  expect_refused(R"({"question": "q", "image": 3})", "image", "expected a string");
  expect_refused(R"({"question": "q", "image": "file:///x.png"})", "image", "data: URIs");
  expect_refused(R"({"question": "q", "image": "data:image/png;base64,@@@@"})", "image", "invalid base64");
  expect_refused(R"({"question": "q", "image": "data:image/png;base64,Zm9v", "window": "sideways"})", "window", "window");
  expect_refused(R"({"question": "q", "image": "data:image/png;base64,Zm9v", "frame": -1})", "frame", "outside");
  expect_refused(R"({"question": "q", "image": "data:image/png;base64,Zm9v", "region": [1, 2]})", "region", "expected an object");
  expect_refused(R"({"question": "q", "image": "data:image/png;base64,Zm9v", "region": {"x": 1, "y": 2, "width": 3}})",
                 "region.height", "required");
  expect_refused(R"({"question": "q", "image": "data:image/png;base64,Zm9v", "region": {"x": 1, "y": 2, "width": 0, "height": 3}})",
                 "region.width", "outside");
  expect_refused(R"({"question": "q", "window": "lung"})", "window", "has none");
}

TEST(RenderRequest, ViewAndFormat) {
  const RenderRequest r = parse_render(R"({"image": "data:application/dicom;base64,Zm9v", "view": "model_input", "format": "json"})");
  EXPECT_TRUE(r.model_input);
  EXPECT_TRUE(r.json);
  EXPECT_EQ(r.image.data.media_type, "application/dicom");
  const RenderRequest d = parse_render(R"({"image": "data:image/png;base64,Zm9v"})");
  EXPECT_FALSE(d.model_input);
  EXPECT_FALSE(d.json);
  EXPECT_THROW(parse_render(R"({"image": "data:image/png;base64,Zm9v", "view": "thumbnail"})"), ApiError);
  EXPECT_THROW(parse_render(R"({"image": "data:image/png;base64,Zm9v", "format": "gif"})"), ApiError);
  EXPECT_THROW(parse_render(R"({"view": "source"})"), ApiError);
}

}  // namespace
}  // namespace medlab::server
