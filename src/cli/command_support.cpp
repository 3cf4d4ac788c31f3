#include "cli/command_support.h"

#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include "core/error.h"
#include "formats/quantize_weights.h"

namespace medlab::cli {

std::unique_ptr<LoadedModel> load_cli_model(const std::string& model, const std::string& mmproj, const std::string& quant) {
  LoadOptions options;
  options.hf_hub_cache = default_hf_hub_cache();
  if (!mmproj.empty()) options.mmproj = mmproj;
  if (!quant.empty()) options.quantize = parse_weight_quant(quant);
  std::unique_ptr<LoadedModel> loaded = load_model(model, options);
  if (loaded->test_model_note) std::fprintf(stderr, "medlab: note: %s\n", loaded->test_model_note->c_str());
  return loaded;
}

std::optional<std::filesystem::path> weight_hash_cache() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / "medlab/weight-hashes.json";
  if (const char* home = std::getenv("HOME"); home && *home) return std::filesystem::path(home) / ".cache/medlab/weight-hashes.json";
  return std::nullopt;
}

void check_output_folder(const std::string& out, bool force) {
  std::error_code ec;
  if (!std::filesystem::exists(out, ec)) return;
  if (!std::filesystem::is_directory(out, ec)) fail("--out ", out, ": exists and is not a folder");
  if (!std::filesystem::is_empty(out, ec) && !force)
    fail("--out ", out, ": folder is not empty (pass --force to write into it anyway)");
}

Environment this_machine() {
  return collect_environment({{"CLI11", CLI11_VERSION}, {"cpp-httplib", CPPHTTPLIB_VERSION}});  // headers only
}

}  // namespace medlab::cli
