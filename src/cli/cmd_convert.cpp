// medlab convert: writes a checkpoint in another format (for now GGUF, loadable by llama.cpp).
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include <unistd.h>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf_export.h"
#include "formats/mmproj_export.h"

namespace medlab::cli {
namespace {

struct ConvertOptions {
  std::string to;
  std::string model;
  std::string out;
  std::string type;  // empty: keep the checkpoint's own type
  std::string name;
  std::string mmproj;  // empty: no mmproj file
};

void run(const ConvertOptions& o) {
  if (o.to != "gguf") fail("convert: --to '", o.to, "' is not supported (supported: gguf)");
  GgufExportOptions options;
  if (!o.type.empty()) {
    options.medium_mix = o.type.ends_with("_m");  // q4_k_m, q5_k_m: llama-quantize's mixes
    options.type = parse_gguf_type(options.medium_mix ? o.type.substr(0, o.type.size() - 2) : o.type);
  }
  options.name = o.name;

  const auto start = std::chrono::steady_clock::now();
  const Checkpoint checkpoint = Checkpoint::open(o.model, default_hf_hub_cache());
  if (!o.mmproj.empty() && !checkpoint.config().multimodal())
    fail("convert: --mmproj needs a model with a vision tower; ", o.model, " is ", checkpoint.config().architecture);
  if (checkpoint.config().multimodal() && o.mmproj.empty())
    std::fprintf(stderr, "medlab: note: the vision tower is not converted; add --mmproj FILE to write it\n");

  const bool tty = isatty(STDERR_FILENO);
  const auto progress = [tty](const std::string& name, size_t done, size_t all) {
    if (tty) std::fprintf(stderr, "\rconverting: %zu/%zu tensors (%s)\033[K", done, all, name.c_str());
  };
  const GgufExportSummary summary = export_gguf(checkpoint, o.out, options, progress);
  if (tty) std::fprintf(stderr, "\n");
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  std::printf("wrote %s: gemma3, %zu tensors, %s weights, %.1f MB of tensor data, vocabulary of %lld, in %.1f s\n",
              o.out.c_str(), summary.tensors, std::string(gguf_type_name(summary.type)).c_str(),
              double(summary.bytes) / 1e6, static_cast<long long>(summary.vocab), seconds());
  if (o.mmproj.empty()) return;
  // The vision tower's rows (1152) are not whole K-quant blocks; its file keeps f16 below 8 bits.
  GgufExportOptions vision_options = options;
  if (options.type && gguf_block_elements(*options.type) > 1 && *options.type != GgufType::Q8_0)
    vision_options.type = GgufType::F16;
  const MmprojExportSummary vision = export_mmproj(checkpoint, o.mmproj, vision_options, progress);
  if (tty) std::fprintf(stderr, "\n");
  std::printf("wrote %s: clip (gemma3 projector), %zu tensors, %s weights, %.1f MB of tensor data, %lld tokens per "
              "image, in %.1f s\n",
              o.mmproj.c_str(), vision.tensors, std::string(gguf_type_name(vision.type)).c_str(),
              double(vision.bytes) / 1e6, static_cast<long long>(vision.tokens_per_image), seconds());
}

}  // namespace

void register_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert a model folder to another format.\n"
      "  --to gguf: llama.cpp's gemma3 layout with the tokenizer embedded (norm weights stored as 1 + w, as\n"
      "  llama.cpp expects), and with --mmproj the vision tower as llama.cpp's clip/mmproj file. Load them with\n"
      "  llama.cpp, e.g. `llama-cli -m OUT.gguf` or `llama-mtmd-cli -m OUT.gguf --mmproj MMPROJ.gguf`.");
  cmd->add_option("--to", o->to, "Target format: gguf")->required();
  cmd->add_option("model", o->model, "Model folder (Hugging Face layout) or a cached Hugging Face id")->required();
  cmd->add_option("out", o->out, "Output file, e.g. medgemma-4b-it.gguf")->required();
  cmd->add_option("--type", o->type,
                  "Type of the weight matrices: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k (every matrix that type, as "
                  "llama-quantize --pure), or q4_k_m, q5_k_m (llama-quantize's Q4_K_M / Q5_K_M mixes). Default: the "
                  "checkpoint's own, bf16 for MedGemma. Norms stay f32; quantized bytes equal llama-quantize's "
                  "(no importance matrix); the mmproj is f16 for types below 8 bits")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m"}));
  cmd->add_option("--mmproj", o->mmproj, "Also write the vision tower and projector as llama.cpp's mmproj GGUF "
                                         "(multimodal models; embeddings stay f32, the input projection f16)");
  cmd->add_option("--name", o->name, "general.name in the GGUF (default: the model folder's name)");
  cmd->callback([o] { run(*o); });
}

}  // namespace medlab::cli
