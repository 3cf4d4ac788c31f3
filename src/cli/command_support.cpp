#include "cli/command_support.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include "core/error.h"
#include "formats/quantize_weights.h"

namespace medlab::cli {

void add_adapter_options(CLI::App& cmd, AdapterArgs& args) {
  CLI::Option* lora =
      cmd.add_option("--lora", args.lora,
                     "A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), as DIR or DIR:SCALE "
                     "(SCALE multiplies the adapter's own alpha/r; default 1). Repeatable, applied in order. By default "
                     "each adapter runs at run time as a low-rank side path beside the base weights, which stay "
                     "untouched, so quantized bases (--quant, GGUF, NF4) work");
  cmd.add_flag("--lora-merge", args.merge,
               "Merge the --lora adapters into the weights at load instead (before --quant): faster decoding, with the "
               "merged weights kept in the base's dtype")
      ->needs(lora);
}

std::unique_ptr<LoadedModel> load_cli_model(const std::string& model, const std::string& mmproj, const std::string& quant,
                                            const AdapterArgs& adapters) {
  LoadOptions options;
  options.hf_hub_cache = default_hf_hub_cache();
  if (!mmproj.empty()) options.mmproj = mmproj;
  if (!quant.empty()) options.quantize = parse_weight_quant(quant);
  for (const std::string& lora : adapters.lora) options.adapters.push_back(parse_adapter_request(lora));
  options.merge_adapters = adapters.merge;
  std::unique_ptr<LoadedModel> loaded = load_model(model, options);
  if (loaded->test_model_note) std::fprintf(stderr, "medlab: note: %s\n", loaded->test_model_note->c_str());
  for (const Checkpoint::AppliedAdapter& a : loaded->checkpoint.adapters()) {
    const size_t replaced = a.adapter->replacements().size();
    const std::string replacements =
        replaced == 0 ? "" : ", " + std::to_string(replaced) + (replaced == 1 ? " tensor" : " tensors") + " replaced (modules_to_save)";
    std::fprintf(stderr, "medlab: LoRA adapter %s: %zu modules adapted%s, scale %g, %s\n", a.adapter->dir().c_str(),
                 a.adapter->modules().size(), replacements.c_str(), double(a.scale),
                 a.merged ? "merged into the weights" : "applied at run time");
  }
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
