// medlab merge-lora: a model with LoRA adapters merged into its weights, written as a new Hugging Face folder
// (which `medlab convert` turns into GGUF like any other).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/command_support.h"
#include "cli/commands.h"
#include "core/error.h"
#include "formats/checkpoint_writer.h"
#include "formats/peft_adapter.h"

namespace medlab::cli {
namespace {

struct MergeLoraOptions {
  std::string model;
  std::vector<std::string> adapters;
  std::string out;
  bool force = false;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
};

void merge_lora(const MergeLoraOptions& o) {
  check_output_folder(o.out, o.force);
  const auto start = std::chrono::steady_clock::now();
  Checkpoint checkpoint = Checkpoint::open(o.model, default_hf_hub_cache());
  if (checkpoint.gguf()) fail(o.model, ": merge-lora reads Hugging Face folders; run a GGUF model with --lora instead");
  for (const std::string& text : o.adapters) {
    const AdapterRequest request = parse_adapter_request(text);
    const auto adapter = LoraAdapter::open(request.dir, checkpoint.config());
    checkpoint.add_adapter(adapter, request.scale, true, o.threads);
    std::fprintf(stderr, "medlab: merged %s (scale %g): %zu modules, %zu tensors replaced whole\n",
                 adapter->dir().string().c_str(), request.scale, adapter->modules().size(), adapter->replacements().size());
  }
  int last_tenth = -1;  // a line per tenth written: a 4B model is 8.6 GB
  write_hf_checkpoint(checkpoint, o.out, [&](uint64_t done, uint64_t total) {
    const int tenth = total ? int(10 * done / total) : 10;
    if (tenth == last_tenth) return;
    last_tenth = tenth;
    std::fprintf(stderr, "medlab: written %.2f of %.2f GB\n", double(done) / 1e9, double(total) / 1e9);
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %s with %zu adapter%s merged, in %.1f s\n", o.out.c_str(), o.model.c_str(), o.adapters.size(),
              o.adapters.size() == 1 ? "" : "s", seconds);
}

}  // namespace

void register_merge_lora(CLI::App& app) {
  auto o = std::make_shared<MergeLoraOptions>();
  CLI::App* cmd = app.add_subcommand(
      "merge-lora",
      "Merge PEFT LoRA adapters into a model and write it as a new Hugging Face folder.\n"
      "Each adapted weight becomes W + scale * (alpha / r) * B @ A, computed in f32 and stored in W's dtype;\n"
      "modules_to_save tensors replace the model's (a saved lm_head unties the head in config.json). The\n"
      "tensor names keep the model's layout; tokenizer and other files are copied. `medlab convert` makes\n"
      "GGUF from the result.");
  cmd->add_option("-m,--model", o->model, "Model folder (Hugging Face layout) or cached Hugging Face id")->required();
  cmd->add_option("--lora", o->adapters, "PEFT adapter folder, DIR or DIR:SCALE (repeatable; merged in order)")->required();
  cmd->add_option("--out", o->out, "Folder to write the merged model into")->required();
  cmd->add_flag("--force", o->force, "Write into --out even if it is not empty");
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->callback([o] { merge_lora(*o); });
}

}  // namespace medlab::cli
