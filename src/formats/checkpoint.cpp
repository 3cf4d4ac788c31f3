#include "formats/checkpoint.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/bnb_nf4.h"

namespace fs = std::filesystem;

namespace medlab {
namespace {

using Part = TensorSpec::Part;

const TensorLayout kLayoutHf450{"language_model.model.", "vision_tower.vision_model.", "multi_modal_projector.",
                                "language_model.lm_head.weight"};
const TensorLayout kLayoutHf452{"model.language_model.", "model.vision_tower.vision_model.",
                                "model.multi_modal_projector.", "lm_head.weight"};
const TensorLayout kLayoutText{"model.", "", "", "lm_head.weight"};

void add_text_tensors(const TextConfig& t, std::vector<TensorSpec>& out) {
  const int64_t h = t.hidden_size, q = t.num_attention_heads * t.head_dim, kv = t.num_key_value_heads * t.head_dim;
  out.push_back({"embed_tokens.weight", Part::Text, {t.vocab_size, h}});
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    for (const char* norm :
         {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      out.push_back({l + norm + ".weight", Part::Text, {h}});
    out.push_back({l + "self_attn.q_proj.weight", Part::Text, {q, h}});
    out.push_back({l + "self_attn.k_proj.weight", Part::Text, {kv, h}});
    out.push_back({l + "self_attn.v_proj.weight", Part::Text, {kv, h}});
    out.push_back({l + "self_attn.o_proj.weight", Part::Text, {h, q}});
    out.push_back({l + "self_attn.q_norm.weight", Part::Text, {t.head_dim}});
    out.push_back({l + "self_attn.k_norm.weight", Part::Text, {t.head_dim}});
    out.push_back({l + "mlp.gate_proj.weight", Part::Text, {t.intermediate_size, h}});
    out.push_back({l + "mlp.up_proj.weight", Part::Text, {t.intermediate_size, h}});
    out.push_back({l + "mlp.down_proj.weight", Part::Text, {h, t.intermediate_size}});
  }
  out.push_back({"norm.weight", Part::Text, {h}});
  if (!t.tie_word_embeddings) out.push_back({"lm_head.weight", Part::Head, {t.vocab_size, h}});
}

void add_vision_tensors(const VisionConfig& v, std::vector<TensorSpec>& out) {
  const int64_t h = v.hidden_size, side = v.image_size / v.patch_size;
  out.push_back({"embeddings.patch_embedding.weight", Part::Vision, {h, v.num_channels, v.patch_size, v.patch_size}});
  out.push_back({"embeddings.patch_embedding.bias", Part::Vision, {h}});
  out.push_back({"embeddings.position_embedding.weight", Part::Vision, {side * side, h}});
  for (int64_t i = 0; i < v.num_hidden_layers; ++i) {
    const std::string l = "encoder.layers." + std::to_string(i) + ".";
    for (const char* norm : {"layer_norm1", "layer_norm2"}) {
      out.push_back({l + norm + ".weight", Part::Vision, {h}});
      out.push_back({l + norm + ".bias", Part::Vision, {h}});
    }
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      out.push_back({l + "self_attn." + proj + ".weight", Part::Vision, {h, h}});
      out.push_back({l + "self_attn." + proj + ".bias", Part::Vision, {h}});
    }
    out.push_back({l + "mlp.fc1.weight", Part::Vision, {v.intermediate_size, h}});
    out.push_back({l + "mlp.fc1.bias", Part::Vision, {v.intermediate_size}});
    out.push_back({l + "mlp.fc2.weight", Part::Vision, {h, v.intermediate_size}});
    out.push_back({l + "mlp.fc2.bias", Part::Vision, {h}});
  }
  out.push_back({"post_layernorm.weight", Part::Vision, {h}});
  out.push_back({"post_layernorm.bias", Part::Vision, {h}});
}

const std::string& prefix_of(const TensorLayout& layout, Part part) {
  switch (part) {
    case Part::Text: return layout.text;
    case Part::Vision: return layout.vision;
    case Part::Projector: return layout.projector;
    case Part::Head: break;
  }
  return layout.text;
}

// "google/medgemma-4b-it" -> <cache>/models--google--medgemma-4b-it/snapshots/<revision>. The revision is
// the one refs/main names, as huggingface_hub resolves it, else the newest snapshot present.
fs::path resolve_hf_id(const std::string& id, const fs::path& cache) {
  std::string folder = "models--" + id;
  for (size_t at = folder.find('/'); at != std::string::npos; at = folder.find('/', at)) folder.replace(at, 1, "--");
  const fs::path repo = cache / folder;
  const fs::path snapshots = repo / "snapshots";
  const std::string hint =
      " (medlab never downloads; fetch it with `huggingface-cli download " + id + "` or pass the model's folder)";

  std::error_code ec;
  if (!fs::is_directory(snapshots, ec))
    fail("model '", id, "': not a folder, and not in the Hugging Face cache: looked for ", snapshots.string(), hint);
  if (std::ifstream ref(repo / "refs" / "main"); ref) {
    std::string revision;
    std::getline(ref, revision);
    const fs::path snapshot = snapshots / revision;
    if (revision.empty() || !fs::is_directory(snapshot, ec))
      fail("model '", id, "': ", (repo / "refs" / "main").string(), " names revision '", revision, "' but ",
           snapshot.string(), " does not exist", hint);
    return snapshot;
  }
  fs::path newest;
  fs::file_time_type newest_time{};
  for (const fs::directory_entry& entry : fs::directory_iterator(snapshots, ec)) {
    if (!entry.is_directory()) continue;
    const fs::file_time_type t = entry.last_write_time();
    if (newest.empty() || t > newest_time) {
      newest = entry.path();
      newest_time = t;
    }
  }
  if (newest.empty()) fail("model '", id, "': ", snapshots.string(), " holds no snapshot", hint);
  return newest;
}

fs::path resolve_model_dir(const std::string& model, const std::optional<fs::path>& hf_hub_cache) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) return fs::absolute(model);
  // An id has exactly one '/', between an owner and a name, neither of them "." or "..".
  const size_t slash = model.find('/');
  const bool looks_like_id = slash != std::string::npos && slash > 0 && slash + 1 < model.size() &&
                             model.find('/', slash + 1) == std::string::npos && model[0] != '.' &&
                             model.substr(slash + 1) != "." && model.substr(slash + 1) != "..";
  if (!looks_like_id) fail(model, ": no such folder");
  if (!hf_hub_cache) fail(model, ": no such folder, and no Hugging Face cache was given to look it up in");
  return resolve_hf_id(model, *hf_hub_cache);
}

// The layout the tensor names use, from where embed_tokens sits.
TensorLayout detect_layout(const std::map<std::string, TensorView>& tensors, const ModelConfig& config,
                           const fs::path& dir) {
  for (const TensorLayout* layout : {&kLayoutHf450, &kLayoutHf452, &kLayoutText}) {
    if (!tensors.count(layout->text + "embed_tokens.weight")) continue;
    const bool has_vision = !layout->vision.empty();
    if (has_vision != config.multimodal())
      fail(dir.string(), ": tensor names are laid out for ", has_vision ? "a multimodal" : "a text-only", " model ('",
           layout->text, "embed_tokens.weight') but config.json declares ", config.architecture);
    return *layout;
  }
  fail(dir.string(), ": no embed_tokens.weight tensor under any known prefix (looked for '", kLayoutHf450.text, "', '",
       kLayoutHf452.text, "', '", kLayoutText.text, "')");
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  std::vector<TensorSpec> specs;
  add_text_tensors(config.text, specs);
  if (config.vision) {
    add_vision_tensors(*config.vision, specs);
    specs.push_back(
        {"mm_input_projection_weight", Part::Projector, {config.vision->hidden_size, config.text.hidden_size}});
    specs.push_back({"mm_soft_emb_norm.weight", Part::Projector, {config.vision->hidden_size}});
  }
  return specs;
}

std::string full_name(const TensorLayout& layout, const TensorSpec& spec) {
  return spec.part == Part::Head ? layout.head : prefix_of(layout, spec.part) + spec.name;
}

const std::vector<TensorLayout>& known_layouts() {
  static const std::vector<TensorLayout> layouts{kLayoutHf450, kLayoutHf452, kLayoutText};
  return layouts;
}

TensorLayout published_layout(const ModelConfig& config) { return config.multimodal() ? kLayoutHf450 : kLayoutText; }

std::map<std::string, std::set<std::string>> read_shard_index(std::string_view text, const std::string& where) {
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON: ", e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail(where, ": has no \"weight_map\" object");
  std::map<std::string, std::set<std::string>> names_by_file;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) fail(where, ": weight_map['", name, "'] must be a file name");
    const std::string shard = file.get<std::string>();
    // Shards sit beside the index; a path elsewhere is refused rather than followed.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      fail(where, ": weight_map['", name, "'] names '", shard, "', which is not a file in this folder");
    names_by_file[shard].insert(name);
  }
  return names_by_file;
}

Checkpoint Checkpoint::open(const std::string& model, const std::optional<fs::path>& hf_hub_cache,
                            const std::optional<fs::path>& mmproj) {
  if (model.ends_with(".gguf")) return open_gguf(model, mmproj);
  if (mmproj) fail(mmproj->string(), ": an mmproj file goes with a .gguf model, not with ", model);
  Checkpoint ck;
  ck.dir_ = resolve_model_dir(model, hf_hub_cache);
  const fs::path config_path = ck.dir_ / "config.json";
  std::error_code ec;
  if (!fs::exists(config_path, ec)) fail(config_path.string(), ": missing; not a Hugging Face model folder?");
  ck.config_ = load_model_config(config_path.string());

  // Weights: one model.safetensors (transformers' first choice), else an index naming the shards.
  const fs::path single = ck.dir_ / "model.safetensors";
  const fs::path index_path = ck.dir_ / "model.safetensors.index.json";
  std::map<std::string, ByteTensor> byte_tensors;  // bitsandbytes' 4-bit parts
  if (fs::exists(single, ec)) {
    ck.files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
    ck.tensors_ = ck.files_.back()->tensors();
    byte_tensors = ck.files_.back()->byte_tensors();
  } else if (fs::exists(index_path, ec)) {
    const std::string where = index_path.string();
    // The 27B model's index is about 90 KB; a larger one is not an index, and is not read into memory.
    constexpr uintmax_t kMaxIndexBytes = 16u << 20;
    if (const uintmax_t size = fs::file_size(index_path, ec); !ec && size > kMaxIndexBytes)
      fail(where, ": ", size, " bytes, more than the ", kMaxIndexBytes >> 20, " MiB an index may have");
    std::ifstream in(index_path, std::ios::binary);
    if (!in) fail(where, ": cannot open");
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    for (const auto& [shard, names] : read_shard_index(text, where)) {
      const fs::path shard_path = ck.dir_ / shard;
      if (!fs::exists(shard_path, ec))
        fail(shard_path.string(), ": missing, but ", where, " lists ", names.size(), " tensors in it (e.g. '",
             *names.begin(), "')");
      ck.files_.push_back(std::make_unique<SafetensorsFile>(shard_path.string()));
      const SafetensorsFile& file = *ck.files_.back();
      for (const std::string& name : names)
        if (!file.tensors().count(name) && !file.byte_tensors().count(name))
          fail(file.path(), ": has no tensor '", name, "', which ", where, " places in it");
      for (const auto& [name, view] : file.tensors()) {
        if (!names.count(name))
          fail(file.path(), ": holds tensor '", name, "', which ", where, " does not place in it");
        ck.tensors_.emplace(name, view);
      }
      for (const auto& [name, bytes] : file.byte_tensors()) {
        if (!names.count(name))
          fail(file.path(), ": holds tensor '", name, "', which ", where, " does not place in it");
        byte_tensors.emplace(name, bytes);
      }
    }
  } else {
    fail(ck.dir_.string(), ": no weights: looked for model.safetensors and model.safetensors.index.json");
  }

  for (JoinedTensor& joined : join_bnb_nf4(ck.tensors_, byte_tensors, config_path))
    ck.adopt_tensor(joined.name, std::move(joined.view), std::move(joined.storage));

  ck.layout_ = detect_layout(ck.tensors_, ck.config_, ck.dir_);

  // Every tensor the config implies, with its shape; nothing unknown beside them.
  const std::string where = ck.dir_.string();
  std::set<std::string> expected;
  const std::vector<TensorSpec> specs = expected_tensors(ck.config_);
  const TensorView* embed = nullptr;
  for (const TensorSpec& spec : specs) {
    const std::string name = full_name(ck.layout_, spec);
    const auto it = ck.tensors_.find(name);
    if (it == ck.tensors_.end()) fail(where, ": missing tensor '", name, "' (", shape_string(spec.shape), ")");
    if (it->second.shape != spec.shape)
      fail(where, ": tensor '", name, "' has shape ", shape_string(it->second.shape), ", expected ",
           shape_string(spec.shape), " from config.json");
    if (spec.name == "embed_tokens.weight") embed = &it->second;
    expected.insert(name);
  }
  // With tied embeddings an lm_head is accepted when it has the embedding's shape, and medlab uses
  // embed_tokens (some exporters save the tied copy anyway).
  for (const auto& [name, view] : ck.tensors_) {
    if (expected.count(name)) continue;
    if (name == ck.layout_.head && view.shape == embed->shape) continue;
    fail(where, ": unexpected tensor '", name, "' ", shape_string(view.shape), " (not part of a ",
         ck.config_.architecture, " with this config.json)");
  }
  return ck;
}

const TensorView& Checkpoint::text(const std::string& name) const {
  const auto it = tensors_.find(layout_.text + name);
  if (it == tensors_.end()) fail(dir_.string(), ": no tensor '", layout_.text + name, "'");
  return it->second;
}

const TensorView& Checkpoint::vision(const std::string& name) const {
  if (layout_.vision.empty())
    fail(dir_.string(), ": ", config_.architecture, " has no vision tower (asked for '", name, "')");
  const auto it = tensors_.find(layout_.vision + name);
  if (it == tensors_.end()) fail(dir_.string(), ": no tensor '", layout_.vision + name, "'");
  return it->second;
}

const TensorView& Checkpoint::projector(const std::string& name) const {
  if (layout_.projector.empty())
    fail(dir_.string(), ": ", config_.architecture, " has no multimodal projector (asked for '", name, "')");
  const auto it = tensors_.find(layout_.projector + name);
  if (it == tensors_.end()) fail(dir_.string(), ": no tensor '", layout_.projector + name, "'");
  return it->second;
}

std::vector<std::string> Checkpoint::weight_files() const {
  std::vector<std::string> paths;
  for (const auto& file : files_) paths.push_back(file->path());
  for (const auto& file : gguf_) paths.push_back(file->path());
  return paths;
}

const MappedFile* Checkpoint::mapping_of(const void* data, size_t bytes) const {
  for (const auto& file : gguf_)
    if (file->mapping().contains(data, bytes)) return &file->mapping();
  for (const auto& file : files_)
    if (file->mapping().contains(data, bytes)) return &file->mapping();
  return nullptr;
}

void Checkpoint::adopt_tensor(const std::string& full_name, TensorView view, std::vector<uint8_t> storage) {
  if (const auto it = tensors_.find(full_name); it != tensors_.end()) {
    const auto* old = static_cast<const uint8_t*>(it->second.data);
    std::erase_if(owned_, [&](const auto& bytes) { return old >= bytes->data() && old < bytes->data() + bytes->size(); });
  }
  owned_.push_back(std::make_unique<std::vector<uint8_t>>(std::move(storage)));
  tensors_[full_name] = std::move(view);
}

fs::path default_hf_hub_cache() {
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub && *hub) return hub;
  if (const char* home = std::getenv("HF_HOME"); home && *home) return fs::path(home) / "hub";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "huggingface" / "hub";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "huggingface" / "hub";
  return fs::path(".cache") / "huggingface" / "hub";
}

}  // namespace medlab
