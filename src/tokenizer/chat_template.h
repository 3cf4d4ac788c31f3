// The Gemma 3 chat template (tokenizer_config.json), in C++: <bos>, <start_of_turn>user / model
// turns closed by <end_of_turn>, the system prompt folded into the first user turn.
#pragma once

#include <string>
#include <vector>

namespace medlab {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (rendered as "model")
  std::string content;
};

// Renders the conversation as the official template does with add_generation_prompt.
// Roles must alternate user/assistant after an optional leading system message; an error says which
// message breaks that. Image placeholders are a later concern and pass through as text.
// The result already begins with "<bos>": encode it with add_bos = false, as HF's
// apply_chat_template(tokenize=True) does. Contents are trimmed as Jinja's trim (Python str.strip).
std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true);

}  // namespace medlab
