#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <bit>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer_json.h"

namespace medlab {
namespace {

using nlohmann::json;

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // "▁", SentencePiece's stand-in for ' '
constexpr uint32_t kMetaspaceCodePoint = 0x2581;
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD
constexpr TokenId kNoToken = -1;

// One well-formed UTF-8 character (Unicode Table 3-7: no overlongs, surrogates or values past
// U+10FFFF) at text[pos]; length 0 means the byte at pos starts no valid character.
struct Utf8Char {
  size_t length = 0;
  uint32_t code_point = 0;
};

Utf8Char next_utf8_char(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return pos + i < text.size() ? uint8_t(text[pos + i]) : 0; };
  const auto continuation = [&](size_t i, uint8_t lo = 0x80, uint8_t hi = 0xBF) {
    const uint8_t b = byte(i);
    return b >= lo && b <= hi;
  };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) return {1, b0};
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!continuation(1)) return {};
    return {2, (uint32_t(b0 & 0x1F) << 6) | (byte(1) & 0x3F)};
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const uint8_t hi = b0 == 0xED ? 0x9F : 0xBF;
    if (!continuation(1, lo, hi) || !continuation(2)) return {};
    return {3, (uint32_t(b0 & 0x0F) << 12) | (uint32_t(byte(1) & 0x3F) << 6) | (byte(2) & 0x3F)};
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80;
    const uint8_t hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (!continuation(1, lo, hi) || !continuation(2) || !continuation(3)) return {};
    return {4, (uint32_t(b0 & 0x07) << 18) | (uint32_t(byte(1) & 0x3F) << 12) |
                   (uint32_t(byte(2) & 0x3F) << 6) | (byte(3) & 0x3F)};
  }
  return {};
}

bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = next_utf8_char(text, pos).length;
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

// A hash map keyed by a pair of 32-bit values (two token ids, or two code points); open addressing
// with linear probing. The encoder looks up every adjacent pair, so this is the hot table; it is
// several times faster than std::unordered_map here.
template <class Value>
class PairMap {
 public:
  PairMap() { rehash(1024); }

  void set(uint32_t first, uint32_t second, Value value) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    const uint64_t key = pack(first, second);
    for (size_t i = hash(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty) ++size_;
      if (slots_[i].key == key || slots_[i].key == kEmpty) {
        slots_[i] = Slot{key, value};
        return;
      }
    }
  }

  const Value* find(uint32_t first, uint32_t second) const {
    const uint64_t key = pack(first, second);
    for (size_t i = hash(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  struct Slot {
    uint64_t key;
    Value value;
  };
  static constexpr uint64_t kEmpty = std::numeric_limits<uint64_t>::max();
  static uint64_t pack(uint32_t first, uint32_t second) { return (uint64_t(first) << 32) | second; }
  size_t hash(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }  // Fibonacci hashing

  void rehash(size_t capacity) {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(capacity, Slot{kEmpty, {}}));
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
    size_ = 0;
    for (const Slot& slot : old)
      if (slot.key != kEmpty) set(uint32_t(slot.key >> 32), uint32_t(slot.key), slot.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

struct Merge {
  uint32_t rank;
  TokenId merged;
};

// One BPE word being merged: its symbols as a linked list, and the queue of candidate merges.
struct Word {
  struct Symbol {
    TokenId id;  // kNoToken once merged into its left neighbour
    int32_t prev, next;
  };
  std::vector<Symbol> symbols;
  std::vector<uint64_t> queue;  // min-heap of (rank << 32 | index of the pair's left symbol)

  void add(TokenId id) {
    const auto index = int32_t(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  }
};

// Added tokens as a byte trie; finds the longest added token starting at a position, which scanned
// left to right gives HF's leftmost-longest split.
class AddedTokenMatcher {
 public:
  void add(std::string_view content, TokenId id) {
    uint32_t node = 0;
    for (const char c : content) {
      const auto [it, inserted] = edges_.try_emplace(edge_key(node, c), uint32_t(token_at_node_.size()));
      if (inserted) token_at_node_.push_back(kNoToken);
      node = it->second;
    }
    token_at_node_[node] = id;
    first_bytes_[uint8_t(content.front())] = true;
  }

  struct Match {
    size_t length = 0;
    TokenId id = kNoToken;
  };

  Match longest_at(std::string_view text, size_t pos) const {
    Match best;
    if (!first_bytes_[uint8_t(text[pos])]) return best;
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto it = edges_.find(edge_key(node, text[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (token_at_node_[node] != kNoToken) best = {i + 1 - pos, token_at_node_[node]};
    }
    return best;
  }

 private:
  static uint64_t edge_key(uint32_t node, char c) { return (uint64_t(node) << 8) | uint8_t(c); }

  std::unordered_map<uint64_t, uint32_t> edges_;
  std::vector<TokenId> token_at_node_{kNoToken};  // node 0 is the root
  std::array<bool, 256> first_bytes_{};
};

// Token string -> id over the strings owned by Impl::token_strings (open addressing). Slots keep
// the hash so that probing rarely touches a string that does not match.
class TokenIndex {
 public:
  void build(const std::vector<std::string>* strings) {
    strings_ = strings;
    size_t capacity = 1024;
    while (capacity < strings->size() * 2) capacity *= 2;
    slots_.assign(capacity, Slot{kNoToken, 0});
    mask_ = capacity - 1;
  }

  void set(TokenId id) {  // a later set for the same string wins
    const std::string_view token = (*strings_)[size_t(id)];
    const size_t hash = std::hash<std::string_view>()(token);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].id == kNoToken || matches(slots_[i], token, hash)) {
        slots_[i] = Slot{id, uint32_t(hash)};
        return;
      }
    }
  }

  TokenId find(std::string_view token) const {
    const size_t hash = std::hash<std::string_view>()(token);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].id == kNoToken || matches(slots_[i], token, hash)) return slots_[i].id;
    }
  }

 private:
  struct Slot {
    TokenId id;
    uint32_t hash;
  };
  bool matches(const Slot& slot, std::string_view token, size_t hash) const {
    return slot.hash == uint32_t(hash) && (*strings_)[size_t(slot.id)] == token;
  }

  const std::vector<std::string>* strings_ = nullptr;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

const json& section(const std::map<std::string, json>& fields, const char* name, const std::string& where) {
  const auto it = fields.find(name);
  if (it == fields.end()) fail(where, ": missing field '", name, "'");
  return it->second;
}

template <class T>
T value_of(const json& object, const char* name, const std::string& where) {
  if (!object.is_object() || !object.contains(name)) fail(where, ": missing field '", name, "'");
  try {
    return object.at(name).get<T>();
  } catch (const json::exception&) {
    fail(where, ".", name, ": unexpected value ", object.at(name).dump());
  }
}

// A field of a JSON object as a string; "" when the value is not an object or the field not a string.
std::string string_field(const json& object, const char* name) {
  if (!object.is_object() || !object.contains(name) || !object[name].is_string()) return {};
  return object[name].get<std::string>();
}

bool is_replace(const json& step, std::string_view from, std::string_view to) {
  return string_field(step, "type") == "Replace" && step.contains("pattern") &&
         string_field(step["pattern"], "String") == from && string_field(step, "content") == to;
}

}  // namespace

struct Tokenizer::Impl {
  std::string path;
  std::vector<std::string> token_strings;  // by id
  TokenIndex ids_by_string;
  std::vector<bool> special;
  std::vector<int16_t> byte_of_token;           // the byte a <0xNN> token stands for, else -1
  std::array<TokenId, 256> byte_tokens{};       // <0xNN> ids
  std::vector<TokenId> bmp_char_tokens;         // code point < 0x10000 -> single-character token
  std::unordered_map<uint32_t, TokenId> astral_char_tokens;
  PairMap<Merge> merges;                        // (left id, right id) -> rank and result
  PairMap<bool> adjacent_in_vocab;              // code point pairs that occur side by side in a token
  AddedTokenMatcher added_tokens;
  TokenId metaspace = kNoToken, bos = kNoToken, eos = kNoToken, pad = kNoToken, unk = kNoToken;
  TokenId end_of_turn = kNoToken;

  void check_pipeline(const TokenizerJson& file) const;
  void load(TokenizerJson& file);
  void index_byte_tokens();
  void index_if_character(const std::string& token, TokenId id);
  TokenId require(const std::string& token, const char* role) const;
  TokenId char_token(uint32_t code_point) const;
  void index_adjacent_characters();
  void encode_segment(std::string_view text, std::vector<TokenId>& out) const;
  void merge_word(Word& word, std::vector<TokenId>& out) const;
  void check_id(TokenId id) const;
  void merges_from_scores(const ScoredVocabulary& vocabulary);
};

TokenId Tokenizer::Impl::require(const std::string& token, const char* role) const {
  const TokenId id = ids_by_string.find(token);
  if (id == kNoToken) fail(path, ": no ", role, " token '", token, "' in the vocabulary");
  return id;
}

// medlab implements exactly the pipeline Gemma 3 uses; anything else is refused, not approximated.
void Tokenizer::Impl::check_pipeline(const TokenizerJson& file) const {
  const json& normalizer = section(file.sections, "normalizer", path);
  if (!is_replace(normalizer, " ", kMetaspace))
    fail(path, ": normalizer: expected Replace ' ' -> '\u2581', found ", normalizer.dump());
  // Split on ' ' runs after that normalizer, so it never finds a ' ': the whole text is one word.
  const json& pre_tokenizer = section(file.sections, "pre_tokenizer", path);
  if (!pre_tokenizer.is_null() && !(string_field(pre_tokenizer, "type") == "Split" && pre_tokenizer.contains("pattern") &&
                                    string_field(pre_tokenizer["pattern"], "String") == " "))
    fail(path, ": pre_tokenizer: expected null or Split on ' ', found ", pre_tokenizer.dump());
  const json& decoder = section(file.sections, "decoder", path);
  const json steps = decoder.is_object() && decoder.contains("decoders") ? decoder["decoders"] : json::array();
  if (string_field(decoder, "type") != "Sequence" || !steps.is_array() || steps.size() != 3 ||
      !is_replace(steps[0], kMetaspace, " ") || string_field(steps[1], "type") != "ByteFallback" ||
      string_field(steps[2], "type") != "Fuse")
    fail(path, ": decoder: expected Sequence[Replace '\u2581' -> ' ', ByteFallback, Fuse], found ", decoder.dump());

  const std::string where = path + ": model";
  const auto model_field = [&](const char* name) {
    const auto it = file.model.find(name);
    return it == file.model.end() ? json() : it->second;
  };
  if (model_field("type") != "BPE") fail(where, ".type: only BPE is supported, found ", model_field("type").dump());
  if (model_field("byte_fallback") != true) fail(where, ".byte_fallback: must be true");
  for (const char* unsupported : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    if (!model_field(unsupported).is_null()) fail(where, ".", unsupported, ": not supported");
  if (model_field("ignore_merges") == true) fail(where, ".ignore_merges: not supported");
  if (file.vocab.empty()) fail(where, ".vocab: missing or empty");
}

void Tokenizer::Impl::load(TokenizerJson& file) {
  check_pipeline(file);
  const json& added = section(file.sections, "added_tokens", path);
  if (!added.is_array()) fail(path, ": added_tokens: expected an array");

  // Ids are dense: the vocabulary's, then added tokens past its end (<image_soft_token>).
  int64_t count = int64_t(file.vocab.size());
  for (size_t i = 0; i < added.size(); ++i) {
    const std::string at = path + ": added_tokens[" + std::to_string(i) + "]";
    const auto id = value_of<int64_t>(added[i], "id", at);
    // Dense ids cannot pass the number of tokens listed; checked before tables are sized by the largest id.
    if (id >= int64_t(file.vocab.size() + added.size()))
      fail(at, ": id ", id, " leaves gaps: ", file.vocab.size(), " vocabulary and ", added.size(),
           " added tokens need ids 0..", file.vocab.size() + added.size() - 1);
    count = std::max(count, id + 1);
  }
  token_strings.assign(size_t(count), {});
  std::vector<bool> assigned(size_t(count), false);
  const auto assign = [&](std::string token, int64_t id, const auto&... where) {
    if (id < 0 || id >= count) fail(path, ": ", where..., ": id ", id, " out of range");
    if (assigned[size_t(id)] && token_strings[size_t(id)] != token)
      fail(path, ": ", where..., ": id ", id, " is both '", token_strings[size_t(id)], "' and '", token, "'");
    assigned[size_t(id)] = true;
    token_strings[size_t(id)] = std::move(token);
  };
  bmp_char_tokens.assign(0x10000, kNoToken);
  for (auto& [token, id] : file.vocab) {
    index_if_character(token, TokenId(id));
    assign(std::move(token), id, "model.vocab");
  }
  special.assign(size_t(count), false);
  std::vector<TokenId> added_ids;
  for (size_t i = 0; i < added.size(); ++i) {
    const std::string at = path + ": added_tokens[" + std::to_string(i) + "]";
    const auto content = value_of<std::string>(added[i], "content", at);
    if (content.empty()) fail(at, ".content: empty");
    // HF's lstrip/rstrip/single_word/normalized matching is not implemented; Gemma 3 sets none of them.
    for (const char* flag : {"lstrip", "rstrip", "single_word", "normalized"})
      if (added[i].value(flag, false)) fail(at, ".", flag, ": true is not supported");
    const auto id = value_of<int64_t>(added[i], "id", at);
    assign(content, id, "added_tokens[", i, "]");
    special[size_t(id)] = added[i].value("special", false);
    added_tokens.add(content, TokenId(id));
    added_ids.push_back(TokenId(id));
  }
  for (int64_t id = 0; id < count; ++id)
    if (!assigned[size_t(id)]) fail(path, ": token id ", id, " has no token (ids must be dense)");

  ids_by_string.build(&token_strings);
  for (TokenId id = 0; id < TokenId(count); ++id) ids_by_string.set(id);
  for (const TokenId id : added_ids) ids_by_string.set(id);  // as in HF, an added token wins a tie

  std::string joined;
  for (size_t rank = 0; rank < file.merges.size(); ++rank) {
    const auto& [left, right] = file.merges[rank];
    const auto id_of = [&](std::string_view token) {
      const TokenId id = ids_by_string.find(token);
      if (id == kNoToken) fail(path, ": model.merges[", rank, "]: '", token, "' is not in the vocabulary");
      return id;
    };
    joined.assign(left).append(right);
    merges.set(uint32_t(id_of(left)), uint32_t(id_of(right)), {uint32_t(rank), id_of(joined)});  // as in HF, a repeat wins
  }

  metaspace = require(std::string(kMetaspace), "metaspace");
  bos = require("<bos>", "bos");
  eos = require("<eos>", "eos");
  pad = require("<pad>", "pad");
  unk = require("<unk>", "unk");
  end_of_turn = require("<end_of_turn>", "end-of-turn");
  index_byte_tokens();
  index_adjacent_characters();
}

void Tokenizer::Impl::index_byte_tokens() {
  byte_of_token.assign(token_strings.size(), -1);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int byte = 0; byte < 256; ++byte) {
    const std::string token = std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
    byte_tokens[size_t(byte)] = require(token, "byte-fallback");
    byte_of_token[size_t(byte_tokens[size_t(byte)])] = int16_t(byte);
  }
}

// BPE starts from the model vocabulary's single-character tokens (added tokens never reach it).
void Tokenizer::Impl::index_if_character(const std::string& token, TokenId id) {
  const Utf8Char c = next_utf8_char(token, 0);
  if (c.length == 0 || c.length != token.size()) return;
  if (c.code_point < 0x10000) {
    bmp_char_tokens[c.code_point] = id;
  } else {
    astral_char_tokens[c.code_point] = id;
  }
}

TokenId Tokenizer::Impl::char_token(uint32_t code_point) const {
  if (code_point < 0x10000) return bmp_char_tokens[code_point];
  const auto it = astral_char_tokens.find(code_point);
  return it == astral_char_tokens.end() ? kNoToken : it->second;
}

void Tokenizer::Impl::index_adjacent_characters() {
  for (const std::string& token : token_strings) {
    uint32_t previous = 0;
    for (size_t pos = 0; pos < token.size();) {
      const Utf8Char c = next_utf8_char(token, pos);
      if (c.length == 0) break;  // JSON strings are UTF-8; this only guards the loop
      if (pos > 0) adjacent_in_vocab.set(previous, c.code_point, true);
      previous = c.code_point;
      pos += c.length;
    }
  }
}

// Normalizes (' ' -> '▁') and runs BPE over one stretch of text between added tokens. Each character
// starts as its vocabulary token, or as its UTF-8 bytes' <0xNN> tokens when it has none (so do
// invalid bytes).
//
// The stretch is cut into words where no merge can ever join across: between two symbols whose
// texts end and start with characters that are never side by side in any token, since a merge
// result is a token holding both. Merges on one side of such a cut never change a pair on the
// other, so BPE word by word gives exactly the whole-stretch result, with small queues.
void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<TokenId>& out) const {
  static constexpr uint32_t kByteTokenFirst = '<', kByteTokenLast = '>';  // "<0xNN>"
  Word word;
  uint32_t last_char = 0;
  const auto add = [&](TokenId id, uint32_t first, uint32_t last) {
    if (!word.symbols.empty() && adjacent_in_vocab.find(last_char, first) == nullptr) merge_word(word, out);
    word.add(id);
    last_char = last;
  };
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char c = next_utf8_char(text, pos);
    if (c.length == 0) {
      add(byte_tokens[uint8_t(text[pos])], kByteTokenFirst, kByteTokenLast);
      ++pos;
      continue;
    }
    const uint32_t normalized = c.code_point == ' ' ? kMetaspaceCodePoint : c.code_point;
    if (const TokenId id = char_token(normalized); id != kNoToken) {
      add(id, normalized, normalized);
    } else {
      for (size_t i = 0; i < c.length; ++i) add(byte_tokens[uint8_t(text[pos + i])], kByteTokenFirst, kByteTokenLast);
    }
    pos += c.length;
  }
  if (!word.symbols.empty()) merge_word(word, out);
}

// Merges the lowest-ranked adjacent pair until none is left, leftmost first on ties, as HF's
// Word::merge_all does; appends the result and empties the word.
void Tokenizer::Impl::merge_word(Word& word, std::vector<TokenId>& out) const {
  auto& symbols = word.symbols;
  auto& queue = word.queue;
  symbols.back().next = -1;
  const auto consider = [&](int32_t left) {
    const int32_t right = symbols[size_t(left)].next;
    if (right < 0) return;
    if (const Merge* merge = merges.find(symbols[size_t(left)].id, symbols[size_t(right)].id)) {
      queue.push_back((uint64_t(merge->rank) << 32) | uint32_t(left));
      std::push_heap(queue.begin(), queue.end(), std::greater<>());
    }
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), std::greater<>());
    const uint64_t top = queue.back();
    queue.pop_back();
    const auto left = int32_t(uint32_t(top));
    auto& symbol = symbols[size_t(left)];
    if (symbol.id == kNoToken || symbol.next < 0) continue;  // stale: merged away since it was queued
    auto& right = symbols[size_t(symbol.next)];
    // Ranks are unique per pair, so an equal rank means the pair is still the one queued.
    const Merge* merge = merges.find(symbol.id, right.id);
    if (merge == nullptr || merge->rank != uint32_t(top >> 32)) continue;
    symbol.id = merge->merged;
    right.id = kNoToken;
    symbol.next = right.next;
    if (symbol.next >= 0) symbols[size_t(symbol.next)].prev = left;
    if (symbol.prev >= 0) consider(symbol.prev);
    consider(left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[size_t(i)].next) out.push_back(symbols[size_t(i)].id);
  symbols.clear();
}

void Tokenizer::Impl::check_id(TokenId id) const {
  if (id < 0 || size_t(id) >= token_strings.size())
    fail("token id ", id, " is out of range: the vocabulary of ", path, " has ids 0..", token_strings.size() - 1);
}

Tokenizer Tokenizer::load(const std::string& tokenizer_json_path) {
  auto impl = std::make_unique<Impl>();
  impl->path = tokenizer_json_path;
  TokenizerJson file;
  {
    const MappedFile mapped(tokenizer_json_path);
    file = read_tokenizer_json({reinterpret_cast<const char*>(mapped.data()), mapped.size()}, tokenizer_json_path);
  }
  try {
    impl->load(file);
  } catch (const json::exception& e) {  // a field of the wrong JSON type, where load() did not check
    fail(tokenizer_json_path, ": unexpected structure: ", e.what());
  }
  return Tokenizer(std::move(impl));
}

namespace {

// llama.cpp's token types.
constexpr int32_t kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeUserDefined = 4;
// Score medlab's GGUF export gives tokens that no merge produces (gguf_export.cpp).
constexpr float kNoMergeScore = -1e9f;

// Control tokens that tokenizer.json lists as added but not special, which the GGUF export (like
// llama.cpp's converter) nevertheless types as control: Gemma's <mask>, <unusedN> and <|...|>.
bool control_but_not_special(std::string_view t) {
  const auto wraps = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.starts_with(open) && t.ends_with(close);
  };
  return t == "<mask>" || wraps("<unused", ">") || wraps("<|", "|>");
}

// A normal token made only of "▁" (two or more): tokenizer.json adds these runs as (non-special)
// added tokens, which the GGUF export types as normal so that llama.cpp reaches them through merges.
bool metaspace_run(std::string_view t) {
  if (t.size() < 2 * kMetaspace.size() || t.size() % kMetaspace.size() != 0) return false;
  for (size_t i = 0; i < t.size(); i += kMetaspace.size())
    if (t.substr(i, kMetaspace.size()) != kMetaspace) return false;
  return true;
}

}  // namespace

// BPE merges from scores. A merge is any split of a normal token into two vocabulary pieces, and
// merges are ranked by the merged token's score, highest first: medlab's export scores a token minus
// the rank of the first merge that makes it, so the lowest-ranked (first-applied) merge for each
// token is the same as tokenizer.json's. Splits that tokenizer.json does not list, or lists with a
// later rank, are admitted at that rank too, as llama.cpp's tokenizer admits them; the parity corpus
// checks that this changes no encoding for Gemma 3's vocabulary.
void Tokenizer::Impl::merges_from_scores(const ScoredVocabulary& v) {
  std::vector<float> distinct;
  for (size_t id = 0; id < v.tokens.size(); ++id)
    if (v.types[id] == kTypeNormal && v.scores[id] > kNoMergeScore) distinct.push_back(v.scores[id]);
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.types[id] != kTypeNormal || !(v.scores[id] > kNoMergeScore)) continue;
    const auto rank = uint32_t(std::lower_bound(distinct.begin(), distinct.end(), v.scores[id], std::greater<>()) -
                               distinct.begin());
    const std::string_view token = token_strings[id];
    for (size_t cut = next_utf8_char(token, 0).length; cut > 0 && cut < token.size();) {
      const TokenId left = ids_by_string.find(token.substr(0, cut));
      const TokenId right = ids_by_string.find(token.substr(cut));
      if (left != kNoToken && right != kNoToken) merges.set(uint32_t(left), uint32_t(right), {rank, TokenId(id)});
      const size_t step = next_utf8_char(token, cut).length;
      cut = step == 0 ? 0 : cut + step;
    }
  }
}

Tokenizer Tokenizer::from_scored_vocabulary(const ScoredVocabulary& v) {
  const std::string& where = v.source;
  if (v.tokens.empty()) fail(where, ": the vocabulary is empty");
  if (v.scores.size() != v.tokens.size() || v.types.size() != v.tokens.size())
    fail(where, ": ", v.tokens.size(), " tokens but ", v.scores.size(), " scores and ", v.types.size(), " token types");
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.types[id] < 1 || v.types[id] > 6) fail(where, ": token ", id, " has unknown token type ", v.types[id]);
    if (v.tokens[id].empty()) fail(where, ": token ", id, " is empty");
    if (!is_valid_utf8(v.tokens[id])) fail(where, ": token ", id, " is not valid UTF-8");
  }

  // The pipeline of Gemma 3's tokenizer.json, which a SentencePiece-style GGUF vocabulary stands for,
  // so that Impl::load builds everything but the merges exactly as from the JSON file.
  TokenizerJson file;
  file.model = {{"type", "BPE"}, {"byte_fallback", true}};
  file.sections["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMetaspace}};
  file.sections["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}};
  file.sections["decoder"] = {
      {"type", "Sequence"},
      {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", kMetaspace}}}, {"content", " "}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}}})}};
  json added = json::array();
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    const int32_t type = v.types[id];
    const std::string& t = v.tokens[id];
    const bool control = type == kTypeControl || type == kTypeUnknown;
    if (control || type == kTypeUserDefined || (type == kTypeNormal && metaspace_run(t)))
      added.push_back({{"id", id}, {"content", t}, {"special", control && !control_but_not_special(t)}});
    file.vocab.emplace_back(t, int64_t(id));
  }
  file.sections["added_tokens"] = std::move(added);

  auto impl = std::make_unique<Impl>();
  impl->path = where;
  impl->load(file);
  impl->merges_from_scores(v);
  return Tokenizer(std::move(impl));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos) ids.push_back(impl_->bos);
  size_t segment_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const auto match = impl_->added_tokens.longest_at(text, pos);
    if (match.length == 0) {
      ++pos;
      continue;
    }
    impl_->encode_segment(text.substr(segment_start, pos - segment_start), ids);
    ids.push_back(match.id);
    pos += match.length;
    segment_start = pos;
  }
  impl_->encode_segment(text.substr(segment_start), ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string text;
  std::string bytes;  // a run of <0xNN> tokens, decoded together
  const auto flush_bytes = [&] {
    if (is_valid_utf8(bytes)) {
      text += bytes;
    } else {
      // HF's ByteFallback: a run that is not valid UTF-8 gives one U+FFFD per byte token.
      for (size_t i = 0; i < bytes.size(); ++i) text += kReplacementChar;
    }
    bytes.clear();
  };
  for (const TokenId id : ids) {
    impl_->check_id(id);
    if (skip_special && impl_->special[size_t(id)]) continue;
    if (const int16_t byte = impl_->byte_of_token[size_t(id)]; byte >= 0) {
      bytes.push_back(char(byte));
      continue;
    }
    if (!bytes.empty()) flush_bytes();
    text += piece(id);
  }
  if (!bytes.empty()) flush_bytes();
  return text;
}

std::string Tokenizer::piece(TokenId id) const {
  impl_->check_id(id);
  if (const int16_t byte = impl_->byte_of_token[size_t(id)]; byte >= 0) return std::string(1, char(byte));
  const std::string& token = impl_->token_strings[size_t(id)];
  std::string text;
  text.reserve(token.size());
  for (size_t pos = 0; pos < token.size();) {
    if (token.compare(pos, kMetaspace.size(), kMetaspace) == 0) {
      text += ' ';
      pos += kMetaspace.size();
    } else {
      text += token[pos++];
    }
  }
  return text;
}

const std::string& Tokenizer::token_string(TokenId id) const {
  impl_->check_id(id);
  return impl_->token_strings[size_t(id)];
}

std::optional<TokenId> Tokenizer::find(std::string_view token) const {
  const TokenId id = impl_->ids_by_string.find(token);
  if (id == kNoToken) return std::nullopt;
  return id;
}

bool Tokenizer::is_special(TokenId id) const {
  impl_->check_id(id);
  return impl_->special[size_t(id)];
}

int32_t Tokenizer::size() const { return int32_t(impl_->token_strings.size()); }
TokenId Tokenizer::bos() const { return impl_->bos; }
TokenId Tokenizer::eos() const { return impl_->eos; }
TokenId Tokenizer::pad() const { return impl_->pad; }
TokenId Tokenizer::unk() const { return impl_->unk; }
TokenId Tokenizer::end_of_turn() const { return impl_->end_of_turn; }

}  // namespace medlab
