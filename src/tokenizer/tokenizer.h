// Gemma 3's tokenizer.json: BPE over SentencePiece-style pieces with byte fallback, its normalizer,
// pre-tokenizer and decoder, and the added/special tokens. Encodes and decodes as Hugging Face
// tokenizers does, byte for byte (checked on ~2,700 strings in tests/parity/tokenizer_expected.jsonl).
//
// Input that is not valid UTF-8 (which HF cannot represent) is medlab's own definition: each byte
// that does not start a well-formed character becomes its <0xNN> byte-fallback token, and the valid
// text around it encodes as usual. Only the pipeline Gemma 3 uses is implemented; load() refuses a
// tokenizer.json that asks for anything else rather than approximating it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace medlab {

using TokenId = int32_t;

// A SentencePiece-style vocabulary as a GGUF file keeps it (tokenizer.ggml.tokens / scores / token_type,
// llama.cpp's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
struct ScoredVocabulary {
  std::string source;  // the file it came from, for errors
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

class Tokenizer {
 public:
  static Tokenizer load(const std::string& tokenizer_json_path);  // throws Error naming the file and field
  // The same BPE from a scored vocabulary (see from_scored_vocabulary in tokenizer.cpp for how merges
  // and added tokens are recovered); gives tokenizer.json's ids for a vocabulary medlab's GGUF export wrote.
  static Tokenizer from_scored_vocabulary(const ScoredVocabulary& vocabulary);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text to ids. Added tokens written in the text ("<start_of_turn>") become their ids, as in HF.
  // add_bos prepends <bos> (HF's add_special_tokens=True). Invalid UTF-8 bytes are encoded through
  // their byte-fallback tokens <0xNN>.
  std::vector<TokenId> encode(std::string_view text, bool add_bos = false) const;
  // Ids to text; skip_special drops special tokens as HF's skip_special_tokens=True does. A run of
  // byte tokens that is not valid UTF-8 becomes one U+FFFD per byte, as in HF's ByteFallback decoder.
  // Throws Error on an id outside 0..size()-1.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const;
  // Text of one token for streaming: byte-fallback tokens give their raw byte, so a caller that
  // concatenates pieces gets the same bytes as decode() wherever the byte runs are valid UTF-8.
  std::string piece(TokenId id) const;
  const std::string& token_string(TokenId id) const;  // as written in the vocabulary ("▁the", "<0x0A>")

  std::optional<TokenId> find(std::string_view token) const;  // vocabulary or added token
  bool is_special(TokenId id) const;
  int32_t size() const;  // ids are 0 .. size()-1
  TokenId bos() const;
  TokenId eos() const;          // <eos> (1); an instruction-tuned reply ends with end_of_turn() instead
  TokenId pad() const;
  TokenId unk() const;
  TokenId end_of_turn() const;  // <end_of_turn>: where an instruction-tuned model's reply stops

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medlab
