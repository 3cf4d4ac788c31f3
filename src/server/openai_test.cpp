#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/openai.h"

namespace medlab::server {
namespace {

const RequestLimits kLimits{.max_new_tokens = 300};

TEST(ChatRequest, TextAndImagePartsRenderThroughTheGemma3Template) {
  const ChatRequest r = parse_chat(R"({"model": "m", "messages": [
      {"role": "system", "content": "You are a radiologist."},
      {"role": "user", "content": [{"type": "text", "text": " Describe  "},
                                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,Zm9v"}},
                                   {"type": "text", "text": "briefly."}]},
      {"role": "assistant", "content": "A chest film."},
      {"role": "user", "content": "Any effusion?"}]})",
                                   kLimits);
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].field, "messages[1].content[1].image_url.url");
  EXPECT_EQ(chat_prompt_text(r),
            "<bos><start_of_turn>user\nYou are a radiologist.\n\nDescribe<start_of_image>briefly.<end_of_turn>\n"
            "<start_of_turn>model\nA chest film.<end_of_turn>\n"
            "<start_of_turn>user\nAny effusion?<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatRequest, OpenAIDefaultsAndOptions) {
  const ChatRequest d = parse_chat(R"({"messages": [{"role": "user", "content": "hi"}]})", kLimits);
  EXPECT_EQ(d.settings.sampler.temperature, 1.0f);  // OpenAI's default
  EXPECT_EQ(d.settings.max_new_tokens, 256);
  EXPECT_EQ(d.settings.logprobs, 0);
  const ChatRequest r = parse_chat(R"({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 9,
      "temperature": 0, "seed": 4, "stop": ["\n\n", "END"], "logprobs": true, "top_logprobs": 3, "stream": true})",
                                   kLimits);
  EXPECT_EQ(r.settings.max_new_tokens, 9);
  EXPECT_EQ(r.settings.sampler.temperature, 0.0f);
  EXPECT_EQ(r.settings.sampler.seed, 4u);
  EXPECT_EQ(r.settings.stop_strings, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.settings.logprobs, 3);
  EXPECT_TRUE(r.stream);
  // logprobs alone still records the chosen token's log-probability.
  EXPECT_EQ(parse_chat(R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": true})", kLimits).settings.logprobs, 1);
}

TEST(ChatRequest, RefusalsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": [{"role": "robot", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "audio"}]}]})", "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]})",
       "messages[0].content[0].image_url.url"},
      {R"({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,Zm9v"}}]}]})",
       "messages[0].content[0]"},
      {R"({"messages": [{"role": "assistant", "content": "x"}]})", "messages"},  // the template wants a user first
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 301})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": 3})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", "top_logprobs"},
  };
  for (const auto& [body, param] : cases) {
    try {
      parse_chat(body, kLimits);
      ADD_FAILURE() << body << ": accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << body;
      EXPECT_EQ(e.param, param) << body << ": " << e.what();
    }
  }
}

TEST(ChatRequest, ImagesPerRequestAreLimited) {
  const std::string image = R"({"type": "image_url", "image_url": {"url": "data:image/png;base64,Zm9v"}})";
  std::string parts = image;
  for (int i = 1; i < 3; ++i) parts += "," + image;
  const std::string body = R"({"messages": [{"role": "user", "content": [)" + parts + "]}]}";
  EXPECT_EQ(parse_chat(body, {.max_new_tokens = 300, .max_images = 3}).images.size(), 3u);
  try {
    parse_chat(body, {.max_new_tokens = 300, .max_images = 2});
    ADD_FAILURE() << "three images accepted with a limit of two";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "messages[0].content[2]");
    EXPECT_NE(std::string(e.what()).find("more than 2 images"), std::string::npos) << e.what();
  }
}

TEST(ChatResponse, FinishReasonsAndChunks) {
  EXPECT_EQ(finish_reason("stop_token"), "stop");
  EXPECT_EQ(finish_reason("stop_string"), "stop");
  EXPECT_EQ(finish_reason("max_new_tokens"), "length");
  EXPECT_EQ(finish_reason("context"), "length");
  const nlohmann::json chunk = chunk_json({"chatcmpl-1", 5, "tiny", "medlab-0.1.0-avx2"}, {{"content", "Hi"}}, nullptr);
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk["created"], 5);
}

}  // namespace
}  // namespace medlab::server
