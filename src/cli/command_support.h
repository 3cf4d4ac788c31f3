// What several commands share: loading --model (and --lora) as every command does, where file hashes are
// remembered, and this machine's environment.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "repro/environment.h"
#include "runtime/session.h"

namespace CLI {
class App;
}

namespace medlab::cli {

// --lora DIR[:SCALE] (repeatable) and --lora-merge.
struct AdapterArgs {
  std::vector<std::string> lora;
  bool merge = false;
};
// Adds both options, with their help, to a command that loads a model.
void add_adapter_options(CLI::App& cmd, AdapterArgs& args);

// A folder, cached Hugging Face id or .gguf (with its --mmproj), with the --lora adapters, quantized at load with
// --quant when given (empty: as stored); says so on stderr when it is a random-weight test model, and names each
// adapter applied.
std::unique_ptr<LoadedModel> load_cli_model(const std::string& model, const std::string& mmproj, const std::string& quant,
                                            const AdapterArgs& adapters = {});

// The file where medlab remembers the SHA-256 of weight files it has read (by path, size and modification
// time): $XDG_CACHE_HOME/medlab/weight-hashes.json, else ~/.cache/medlab/...; none without either variable.
std::optional<std::filesystem::path> weight_hash_cache();

// --out for a command that writes a folder: it may not exist yet, or be empty; a folder with files only with --force.
void check_output_folder(const std::string& out, bool force);

// This machine, with the libraries of the layers above repro that only the CLI sees (CLI11, cpp-httplib).
Environment this_machine();

}  // namespace medlab::cli
