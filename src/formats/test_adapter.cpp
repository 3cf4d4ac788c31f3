#include "formats/test_adapter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "formats/test_checkpoint.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace medlab {
namespace {

using Part = TensorSpec::Part;

// What all-linear expands to for Gemma 3, reduced to the suffixes that tell the modules apart.
const std::vector<std::string> kAllLinearSuffixes = {"down_proj", "fc1",     "fc2",    "gate_proj", "k_proj",
                                                     "o_proj",    "out_proj", "q_proj", "up_proj",   "v_proj"};

struct AdaptedModule {
  std::string key;  // "base_model.model.language_model.model.layers.0.self_attn.q_proj"
  int64_t rows, cols;
};

bool selects(const std::vector<std::string>& names, const std::string& module) {
  for (const std::string& name : names)
    if (module == name || module.ends_with("." + name)) return true;
  return false;
}

}  // namespace

void write_test_adapter(const TestAdapterOptions& o, const std::string& out_dir) {
  const ModelConfig config = test_model_config(o.preset);
  if (o.rank < 1) fail("test adapter: rank ", o.rank, " must be at least 1");
  if (o.dtype != DType::F32 && o.dtype != DType::F16 && o.dtype != DType::BF16)
    fail("test adapter: weights are f32, f16 or bf16, not ", dtype_name(o.dtype));
  const TensorLayout& layout = known_layouts()[config.multimodal() ? (o.new_layout ? 1 : 0) : 2];
  const bool all_linear = o.target_modules == std::vector<std::string>{"all-linear"};
  const std::vector<std::string>& targets = all_linear ? kAllLinearSuffixes : o.target_modules;

  std::vector<AdaptedModule> modules;
  for (const TensorSpec& spec : expected_tensors(config)) {
    const bool linear = spec.shape.size() == 2 && ((spec.part == Part::Text && spec.name != "embed_tokens.weight") ||
                                                   (spec.part == Part::Vision && spec.name.starts_with("encoder.")));
    if (!linear) continue;
    const std::string weight = full_name(layout, spec);
    const std::string module = weight.substr(0, weight.size() - std::string(".weight").size());
    if (selects(targets, module)) modules.push_back({"base_model.model." + module, spec.shape[0], spec.shape[1]});
  }
  if (selects(targets, "lm_head"))  // the output head is never part of all-linear
    modules.push_back({"base_model.model." + layout.head.substr(0, layout.head.size() - std::string(".weight").size()),
                       config.text.vocab_size, config.text.hidden_size});
  if (modules.empty()) fail("test adapter: target modules select no linear layer of the ", o.preset, " preset");

  // modules_to_save tensors, drawn as the preset's own but from another seed.
  std::vector<std::pair<std::string, TensorSpec>> saved;
  for (const std::string& name : o.modules_to_save) {
    if (name == "embed_tokens")
      saved.emplace_back("base_model.model." + layout.text + "embed_tokens.weight",
                         TensorSpec{"embed_tokens.weight", Part::Text, {config.text.vocab_size, config.text.hidden_size}});
    else if (name == "lm_head")
      saved.emplace_back("base_model.model." + layout.head,
                         TensorSpec{"lm_head.weight", Part::Head, {config.text.vocab_size, config.text.hidden_size}});
    else
      fail("test adapter: modules_to_save '", name, "' is not one of embed_tokens, lm_head");
  }

  std::vector<TensorToWrite> header;
  for (const AdaptedModule& m : modules) {
    header.push_back({m.key + ".lora_A.weight", o.dtype, {o.rank, m.cols}, nullptr});
    header.push_back({m.key + ".lora_B.weight", o.dtype, {m.rows, o.rank}, nullptr});
  }
  for (const auto& [name, spec] : saved) header.push_back({name, o.dtype, spec.shape, nullptr});
  std::sort(header.begin(), header.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail(out_dir, ": cannot create: ", ec.message());
  const fs::path dir(out_dir);
  const double scaling = o.use_rslora ? o.alpha / std::sqrt(double(o.rank)) : o.alpha / double(o.rank);
  SafetensorsWriter writer((dir / "adapter_model.safetensors").string(), header);
  for (const TensorToWrite& t : header) {
    const auto spec = std::find_if(saved.begin(), saved.end(), [&](const auto& s) { return s.first == t.name; });
    if (spec != saved.end()) {
      append_test_tensor(writer, spec->second, t.name, config.text, o.dtype, o.seed + 1);
    } else if (t.name.ends_with(".lora_A.weight")) {  // A x keeps the size of x per component
      append_normal_tensor(writer, t.name, t.shape[0] * t.shape[1], 0, float(1 / std::sqrt(double(t.shape[1]))), o.dtype,
                           o.seed);
    } else {  // B: rows of scaling * B @ A x of size ~0.3 when x's components are ~1
      append_normal_tensor(writer, t.name, t.shape[0] * t.shape[1], 0, float(0.3 / (scaling * std::sqrt(double(o.rank)))),
                           o.dtype, o.seed);
    }
  }
  writer.finish();

  // adapter_config.json with the fields PEFT writes, keys sorted as it sorts them.
  json targets_json = json::array();
  for (const std::string& t : targets) targets_json.push_back(t);
  json config_json = {
      {"alpha_pattern", json::object()},
      {"auto_mapping", nullptr},
      {"base_model_name_or_path", config.multimodal() ? "google/medgemma-4b-it" : "google/medgemma-27b-text-it"},
      {"bias", "none"},
      {"corda_config", nullptr},
      {"eva_config", nullptr},
      {"exclude_modules", nullptr},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layer_replication", nullptr},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"loftq_config", json::object()},
      {"lora_alpha", o.alpha},
      {"lora_bias", false},
      {"lora_dropout", 0.05},
      {"megatron_config", nullptr},
      {"megatron_core", "megatron.core"},
      {"modules_to_save", o.modules_to_save.empty() ? json(nullptr) : json(o.modules_to_save)},
      {"peft_type", "LORA"},
      {"qalora_group_size", 16},
      {"r", o.rank},
      {"rank_pattern", json::object()},
      {"revision", nullptr},
      {"target_modules", targets_json},
      {"target_parameters", nullptr},
      {"task_type", "CAUSAL_LM"},
      {"trainable_token_indices", nullptr},
      {"use_dora", false},
      {"use_qalora", false},
      {"use_rslora", o.use_rslora},
  };
  std::ofstream out(dir / "adapter_config.json");
  out << config_json.dump(2) << "\n";
  std::ofstream marker(dir / "medlab_test_adapter.json");
  marker << json{{"note", "random-weight TEST adapter made by medlab make-test-model; its output is meaningless"},
                 {"preset", o.preset},
                 {"seed", o.seed}}
                .dump(2)
         << "\n";
  if (!out || !marker) fail(out_dir, ": writing the adapter's files failed");
}

}  // namespace medlab
