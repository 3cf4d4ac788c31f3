// medlab tokenize: shows how text splits into Gemma 3 tokens, or turns token ids back into text.
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace medlab::cli {
namespace {

struct Options {
  std::string model;
  std::string text;
  std::string file;
  std::string decode;
  bool json = false;
  bool no_bos = false;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--file ", path, ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<TokenId> parse_ids(const std::string& list) {
  std::vector<TokenId> ids;
  std::string item;
  std::istringstream items(list);
  const auto take = [&] {
    if (item.empty()) return;
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || id < 0 || id > INT32_MAX) fail("--decode: '", item, "' is not a token id");
    ids.push_back(TokenId(id));
    item.clear();
  };
  for (char c; items.get(c);) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      take();
    } else {
      item += c;
    }
  }
  take();
  if (ids.empty()) fail("--decode: no token ids given");
  return ids;
}

// Tokens can be "\n" or "\t"; escaping keeps one token per output line.
std::string escaped(const std::string& token) {
  std::string out;
  for (const char c : token) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned char>(c));
          out += hex;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string dump(const nlohmann::json& value) { return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

void run(const Options& o) {
  const Tokenizer tokenizer = Tokenizer::load((std::filesystem::path(o.model) / "tokenizer.json").string());
  if (!o.decode.empty()) {
    const std::vector<TokenId> ids = parse_ids(o.decode);
    const std::string text = tokenizer.decode(ids);
    if (o.json) {
      std::printf("%s\n", dump({{"ids", ids}, {"text", text}}).c_str());
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::printf("\n");
    }
    return;
  }
  const std::string text = o.file.empty() ? o.text : read_text_file(o.file);
  const std::vector<TokenId> ids = tokenizer.encode(text, !o.no_bos);
  if (o.json) {
    nlohmann::json pieces = nlohmann::json::array();
    for (const TokenId id : ids) pieces.push_back(tokenizer.token_string(id));
    std::printf("%s\n", dump({{"ids", ids}, {"pieces", pieces}}).c_str());
    return;
  }
  for (const TokenId id : ids) std::printf("%6d\t%s\n", id, escaped(tokenizer.token_string(id)).c_str());
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Split text into the model's tokens, or decode token ids back into text.\n"
      "Prints one token per line: its id, a tab, and its vocabulary string (\u2581 stands for a space,\n"
      "<0xNN> for a raw byte; newlines and tabs are shown as \\n and \\t). Added tokens written in the\n"
      "text, such as <start_of_turn>, become their ids as in Hugging Face tokenizers.");
  cmd->add_option("--model", options->model, "Model folder holding tokenizer.json")->required();
  CLI::Option* text = cmd->add_option("--text", options->text, "Text to tokenize");
  CLI::Option* file = cmd->add_option("--file", options->file, "File whose contents to tokenize");
  CLI::Option* decode =
      cmd->add_option("--decode", options->decode, "Token ids to decode, separated by commas or spaces (\"2,9259,1902\")");
  text->excludes(file)->excludes(decode);
  file->excludes(decode);
  cmd->add_flag("--json", options->json,
                "Print JSON: {\"ids\": [...], \"pieces\": [...]} (vocabulary strings), or for --decode "
                "{\"ids\": [...], \"text\": \"...\"}");
  cmd->add_flag("--no-bos", options->no_bos, "Do not prepend <bos> (id 2)");
  cmd->callback([options, text, file, decode] {
    if (text->count() + file->count() + decode->count() != 1) fail("tokenize: give one of --text, --file or --decode");
    run(*options);
  });
}

}  // namespace medlab::cli
