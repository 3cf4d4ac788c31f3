// Expected strings were rendered from tokenizer_config.json's chat_template by Python Jinja2 3.1
// set up as transformers does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks).
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace medlab {
namespace {

TEST(ChatTemplate, SingleTurnIsTrimmedAndPromptsTheModel) {
  EXPECT_EQ(render_chat({{"user", "  What is this?\n"}}),
            "<bos><start_of_turn>user\nWhat is this?<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, SystemPromptGoesUntrimmedBeforeTheFirstUserTurn) {
  EXPECT_EQ(render_chat({{"system", " You are a radiologist. "}, {"user", "Describe."}}),
            "<bos><start_of_turn>user\n You are a radiologist. \n\nDescribe.<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, MultiTurnWritesAssistantAsModel) {
  EXPECT_EQ(render_chat({{"user", "Hi"}, {"assistant", " Hello! "}, {"user", "More"}}, false),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nMore<end_of_turn>\n");
}

TEST(ChatTemplate, SystemAloneRendersNoTurn) {
  EXPECT_EQ(render_chat({{"system", "S"}}), "<bos><start_of_turn>model\n");
}

TEST(ChatTemplate, OddPositionsMayHoldAnyNonUserRole) {
  EXPECT_EQ(render_chat({{"user", "a"}, {"system", "b"}}),
            "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>system\nb<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, TrimUsesPythonWhitespace) {
  // U+3000, U+00A0, U+001C and U+0085 are whitespace to str.strip(); U+FEFF and U+200B are not.
  EXPECT_EQ(render_chat({{"user", "\u3000x\u00a0\x1c\u0085"}}),
            "<bos><start_of_turn>user\nx<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render_chat({{"user", "\ufeffx\u200b"}}),
            "<bos><start_of_turn>user\n\ufeffx\u200b<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render_chat({{"user", " \t\n"}}), "<bos><start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, RolesMustAlternate) {
  EXPECT_THROW(render_chat({{"assistant", "x"}}), Error);
  EXPECT_THROW(render_chat({{"user", "x"}, {"user", "y"}}), Error);
  EXPECT_THROW(render_chat({{"system", "s"}, {"system", "y"}}), Error);
  EXPECT_THROW(render_chat({{"user", "x"}, {"assistant", "y"}, {"assistant", "z"}}), Error);
  try {
    render_chat({{"user", "x"}, {"assistant", "y"}, {"assistant", "z"}});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("message 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("must alternate"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, NoMessagesIsAnError) { EXPECT_THROW(render_chat({}), Error); }

}  // namespace
}  // namespace medlab
