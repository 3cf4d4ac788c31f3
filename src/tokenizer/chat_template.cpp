#include "tokenizer/chat_template.h"

#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace medlab {
namespace {

// Python's str.isspace(), which Jinja's trim filter (str.strip()) uses.
bool is_python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Decodes the character ending at or starting at a byte offset; the whitespace set is all below
// U+3001, so 1-3 byte forms suffice and anything else counts as "not space".
uint32_t code_point_at(std::string_view s, size_t start, size_t length) {
  const auto b = [&](size_t i) { return uint32_t(uint8_t(s[start + i])); };
  if (length == 1) return b(0);
  if (length == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
}

size_t sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  return 0;  // 4-byte forms, continuation and invalid bytes: never whitespace
}

std::string_view python_strip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const size_t length = sequence_length(uint8_t(s[begin]));
    if (length == 0 || begin + length > s.size() || !is_python_space(code_point_at(s, begin, length))) break;
    begin += length;
  }
  size_t end = s.size();
  while (end > begin) {
    // Step back over continuation bytes to the lead byte of the last character.
    size_t start = end - 1;
    while (start > begin && end - start < 3 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
    const size_t length = sequence_length(uint8_t(s[start]));
    if (length != end - start || !is_python_space(code_point_at(s, start, length))) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

}  // namespace

// Follows the Jinja template in Gemma 3's tokenizer_config.json line by line: "<bos>"; a leading
// system message's content (untrimmed) plus "\n\n" goes in front of the first turn's trimmed content;
// the remaining messages must be user at even positions and anything but user at odd ones; each turn
// is "<start_of_turn>" role "\n" content "<end_of_turn>\n", with assistant written as model.
std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  if (messages.empty()) fail("chat: no messages (the template reads messages[0])");
  std::string prompt = "<bos>";
  std::string first_user_prefix;
  size_t first = 0;
  if (messages[0].role == "system") {
    first_user_prefix = messages[0].content + "\n\n";
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    const bool should_be_user = (i - first) % 2 == 0;
    if ((message.role == "user") != should_be_user)
      fail("chat message ", i, " has role '", message.role, "' where ", should_be_user ? "'user'" : "a reply",
           " belongs: conversation roles must alternate user/assistant/user/assistant/...");
    prompt += "<start_of_turn>";
    prompt += message.role == "assistant" ? "model" : message.role;
    prompt += '\n';
    if (i == first) prompt += first_user_prefix;
    prompt += python_strip(message.content);
    prompt += "<end_of_turn>\n";
  }
  if (add_generation_prompt) prompt += "<start_of_turn>model\n";
  return prompt;
}

}  // namespace medlab
