#include "formats/checkpoint_writer.h"

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant.h"
#include "formats/safetensors.h"

namespace fs = std::filesystem;

namespace medlab {
namespace {

constexpr uint64_t kMaxShardBytes = 5'000'000'000ull;  // transformers' default max_shard_size

bool is_weight_file(const std::string& name) {
  return (name.starts_with("model") && name.ends_with(".safetensors")) || name == "model.safetensors.index.json";
}

// The source config.json, as written, with the head untied when the checkpoint's head is its own.
void write_config(const Checkpoint& checkpoint, const fs::path& from, const fs::path& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) fail(from.string(), ": cannot open");
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in, nullptr, false);
  if (config.is_discarded() || !config.is_object()) fail(from.string(), ": not a JSON object");
  if (!checkpoint.config().text.tie_word_embeddings) {
    config["tie_word_embeddings"] = false;
    if (config.contains("text_config") && config["text_config"].is_object())
      config["text_config"]["tie_word_embeddings"] = false;
  }
  std::ofstream out(to, std::ios::binary);
  out << config.dump(2) << "\n";
  if (!out) fail(to.string(), ": write failed");
}

}  // namespace

void write_hf_checkpoint(const Checkpoint& checkpoint, const fs::path& out,
                         const std::function<void(uint64_t, uint64_t)>& progress) {
  if (checkpoint.gguf()) fail(checkpoint.gguf()->path(), ": a GGUF model cannot be written back as a Hugging Face folder");
  std::vector<std::pair<std::string, TensorView>> tensors;
  const std::set<std::string> needed = [&] {
    std::set<std::string> names;
    for (const TensorSpec& spec : expected_tensors(checkpoint.config())) names.insert(full_name(checkpoint.layout(), spec));
    return names;
  }();
  uint64_t total = 0;
  for (const auto& [name, view] : checkpoint.tensors()) {
    if (!needed.count(name)) continue;  // a tied head's redundant copy
    if (is_quantized(view.dtype))
      fail("tensor ", name, " is ", dtype_name(view.dtype), "; merged checkpoints are written from f32, f16 or bf16 weights");
    tensors.emplace_back(name, view);
    total += view.nbytes();
  }

  std::vector<std::vector<size_t>> shards(1);
  uint64_t in_shard = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t bytes = tensors[i].second.nbytes();
    if (!shards.back().empty() && total > kMaxShardBytes && in_shard + bytes > kMaxShardBytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += bytes;
  }

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) fail(out.string(), ": cannot create: ", ec.message());
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t done = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char file_name[64];
    if (shards.size() == 1)
      std::snprintf(file_name, sizeof file_name, "model.safetensors");
    else
      std::snprintf(file_name, sizeof file_name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorToWrite> header;
    for (size_t i : shards[s]) header.push_back({tensors[i].first, tensors[i].second.dtype, tensors[i].second.shape, nullptr});
    SafetensorsWriter writer((out / file_name).string(), header);
    for (size_t i : shards[s]) {
      const TensorView& t = tensors[i].second;
      writer.append(t.data, t.nbytes());
      weight_map[tensors[i].first] = file_name;
      done += t.nbytes();
      if (progress) progress(done, total);
    }
    writer.finish();
  }
  if (shards.size() > 1) {
    std::ofstream index(out / "model.safetensors.index.json");
    index << nlohmann::ordered_json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) << "\n";
    if (!index) fail((out / "model.safetensors.index.json").string(), ": write failed");
  }

  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoint.dir())) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || is_weight_file(name)) continue;
    if (name == "config.json")
      write_config(checkpoint, entry.path(), out / name);
    else
      fs::copy_file(entry.path(), out / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace medlab
