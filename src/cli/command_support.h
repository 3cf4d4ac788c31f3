// What several commands share: loading --model as every command does, where file hashes are remembered, and
// this machine's environment.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "repro/environment.h"
#include "runtime/session.h"

namespace medlab::cli {

// A folder, cached Hugging Face id or .gguf (with its --mmproj), quantized at load with --quant when given
// (empty: as stored); says so on stderr when it is a random-weight test model.
std::unique_ptr<LoadedModel> load_cli_model(const std::string& model, const std::string& mmproj, const std::string& quant);

// The file where medlab remembers the SHA-256 of weight files it has read (by path, size and modification
// time): $XDG_CACHE_HOME/medlab/weight-hashes.json, else ~/.cache/medlab/...; none without either variable.
std::optional<std::filesystem::path> weight_hash_cache();

// --out for a command that writes a folder: it may not exist yet, or be empty; a folder with files only with --force.
void check_output_folder(const std::string& out, bool force);

// This machine, with the libraries of the layers above repro that only the CLI sees (CLI11, cpp-httplib).
Environment this_machine();

}  // namespace medlab::cli
