// Reading PEFT LoRA adapters and applying them to a checkpoint. The rules that pick modules, ranks and
// scalings are PEFT's (tuners_utils.check_target_module_exists, lora.model's rank/alpha patterns).
#include "formats/peft_adapter.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // rank_pattern and alpha_pattern are tried in the file's order

namespace medlab {
namespace {

using Part = TensorSpec::Part;

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kKeyPrefix = "base_model.model.";
constexpr uintmax_t kMaxAdapterConfigBytes = 4u << 20;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A Python regular expression as PEFT applies it; the ECMAScript grammar covers what adapter configs use.
std::regex python_regex(const std::string& pattern, const std::string& where) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail(where, ": '", pattern, "' is not a regular expression medlab can read: ", e.what());
  }
}

// A field that is a string (a regular expression, matched whole) or a list of names (matched exactly or
// as a dotted suffix), as target_modules and exclude_modules are.
struct ModuleSelector {
  std::optional<std::regex> regex;
  std::vector<std::string> names;
  bool all_linear = false;
  bool empty() const { return !regex && names.empty() && !all_linear; }

  bool matches(const std::string& module) const {
    if (regex) return std::regex_match(module, *regex);
    for (const std::string& name : names)
      if (module == name || ends_with(module, "." + name)) return true;
    return false;
  }
  bool matches_exactly(const std::string& module) const {
    for (const std::string& name : names)
      if (module == name) return true;
    return false;
  }
};

struct AdapterConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;
  ModuleSelector target_modules, exclude_modules;
  std::vector<std::string> modules_to_save;
  std::vector<std::pair<std::string, double>> rank_pattern, alpha_pattern;  // in the file's order
  std::optional<std::set<int64_t>> layers_to_transform;
  std::vector<std::string> layers_pattern;
  std::string base_model;
};

class ConfigFields {
 public:
  ConfigFields(const json& object, std::string source) : object_(object), source_(std::move(source)) {}

  [[noreturn]] void bad(const std::string& key, const std::string& what) const { fail(source_, ": ", key, " ", what); }
  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const json& at(const char* key) const { return object_.at(key); }
  const std::string& source() const { return source_; }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!at(key).is_boolean()) bad(key, "must be true or false");
    return at(key).get<bool>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!at(key).is_number() || !std::isfinite(at(key).get<double>())) bad(key, "must be a finite number");
    return at(key).get<double>();
  }
  std::vector<std::string> names(const char* key) const {
    std::vector<std::string> out;
    if (!has(key)) return out;
    if (!at(key).is_array()) bad(key, "must be a list of module names");
    for (const json& v : at(key)) {
      if (!v.is_string()) bad(key, "must be a list of module names, found " + v.dump());
      out.push_back(v.get<std::string>());
    }
    return out;
  }
  ModuleSelector selector(const char* key) const {
    ModuleSelector s;
    if (!has(key)) return s;
    if (at(key).is_string()) {
      const std::string text = at(key).get<std::string>();
      std::string lower = text;
      for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "all-linear")
        s.all_linear = true;
      else
        s.regex = python_regex(text, source_ + ": " + key);
      return s;
    }
    s.names = names(key);
    return s;
  }
  std::vector<std::pair<std::string, double>> patterns(const char* key) const {
    std::vector<std::pair<std::string, double>> out;
    if (!has(key)) return out;
    if (!at(key).is_object()) bad(key, "must be an object of module patterns and numbers");
    for (const auto& [pattern, value] : at(key).items()) {
      if (!value.is_number() || !std::isfinite(value.get<double>()))
        bad(std::string(key) + "['" + pattern + "']", "must be a number");
      out.emplace_back(pattern, value.get<double>());
    }
    return out;
  }

 private:
  const json& object_;
  std::string source_;
};

AdapterConfig read_adapter_config(const fs::path& path) {
  const std::string where = path.string();
  std::error_code ec;
  if (const uintmax_t size = fs::file_size(path, ec); !ec && size > kMaxAdapterConfigBytes)
    fail(where, ": ", size, " bytes, more than the ", kMaxAdapterConfigBytes >> 20, " MiB an adapter config may have");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(where, ": cannot open");
  json j;
  try {
    j = json::parse(std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()});
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail(where, ": expected a JSON object");
  const ConfigFields f(j, where);

  const std::string type = f.has("peft_type") && f.at("peft_type").is_string() ? f.at("peft_type").get<std::string>() : "";
  if (type != "LORA") f.bad("peft_type", "is '" + type + "'; medlab reads LoRA adapters (\"LORA\")");
  // Variants whose arithmetic differs from plain LoRA are refused rather than run wrongly.
  if (f.boolean("use_dora", false)) f.bad("use_dora", "is true; DoRA adapters are not supported (merge them in PEFT first)");
  if (f.boolean("lora_bias", false)) f.bad("lora_bias", "is true; LoRA biases are not supported");
  if (f.boolean("use_qalora", false)) f.bad("use_qalora", "is true; QA-LoRA adapters are not supported");
  for (const char* key : {"trainable_token_indices", "layer_replication", "alora_invocation_tokens"})
    if (f.has(key)) f.bad(key, "is set; this PEFT feature is not supported");
  if (f.has("target_parameters") && !(f.at("target_parameters").is_array() && f.at("target_parameters").empty()))
    f.bad("target_parameters", "is set; LoRA on parameters (rather than modules) is not supported");

  AdapterConfig c;
  if (!f.has("r") || !f.at("r").is_number_integer() || f.at("r").get<int64_t>() < 1 || f.at("r").get<int64_t>() > 65536)
    f.bad("r", "must be an integer rank from 1 to 65536");
  c.r = f.at("r").get<int64_t>();
  c.lora_alpha = f.number("lora_alpha", 8);
  c.use_rslora = f.boolean("use_rslora", false);
  if (!f.has("target_modules"))
    f.bad("target_modules", "is missing; PEFT writes the modules it adapted there");
  c.target_modules = f.selector("target_modules");
  c.exclude_modules = f.selector("exclude_modules");
  if (c.exclude_modules.all_linear) f.bad("exclude_modules", "cannot be 'all-linear'");
  c.modules_to_save = f.names("modules_to_save");
  c.rank_pattern = f.patterns("rank_pattern");
  c.alpha_pattern = f.patterns("alpha_pattern");
  for (const auto& [pattern, rank] : c.rank_pattern)
    if (rank < 1 || rank > 65536 || rank != std::floor(rank)) f.bad("rank_pattern['" + pattern + "']", "must be a rank from 1 to 65536");
  if (f.has("layers_to_transform")) {
    if (!c.target_modules.names.empty() || c.target_modules.all_linear) {
      std::set<int64_t> layers;
      const json& v = f.at("layers_to_transform");
      if (v.is_number_integer()) {
        layers.insert(v.get<int64_t>());
      } else if (v.is_array()) {
        for (const json& i : v) {
          if (!i.is_number_integer()) f.bad("layers_to_transform", "must be a layer index or a list of them");
          layers.insert(i.get<int64_t>());
        }
      } else {
        f.bad("layers_to_transform", "must be a layer index or a list of them");
      }
      c.layers_to_transform = std::move(layers);
    } else {
      f.bad("layers_to_transform", "is set with a regular-expression target_modules, which PEFT refuses");
    }
    if (f.has("layers_pattern"))
      c.layers_pattern = f.at("layers_pattern").is_string() ? std::vector<std::string>{f.at("layers_pattern").get<std::string>()}
                                                           : f.names("layers_pattern");
  }
  if (f.has("base_model_name_or_path") && f.at("base_model_name_or_path").is_string())
    c.base_model = f.at("base_model_name_or_path").get<std::string>();
  return c;
}

// The first pattern (in the file's order) that matches the module's name as a whole or as a dotted suffix,
// as PEFT's get_pattern_key does; the default otherwise.
double pattern_value(const std::vector<std::pair<std::string, double>>& patterns, const std::string& module,
                     double fallback, const std::string& where) {
  for (const auto& [pattern, value] : patterns)
    if (std::regex_match(module, python_regex("(.*\\.)?(" + pattern + ")", where))) return value;
  return fallback;
}

// The layer index PEFT's layers_to_transform looks at: the number after "<pattern>." (any component when
// no layers_pattern is given), first occurrence.
std::optional<int64_t> layer_index(const std::string& module, const std::vector<std::string>& layers_pattern) {
  std::vector<std::string> patterns = layers_pattern;
  if (patterns.empty()) patterns.push_back("[^.]*");
  for (const std::string& p : patterns) {
    std::smatch m;
    if (std::regex_search(module, m, std::regex("^.*?\\." + p + "\\.(\\d+)\\.")))
      return std::stoll(m[1].str());
  }
  return std::nullopt;
}

// Every module of the model that target_modules can name, in one layout: its linear layers, and the
// embedding, output head and patch convolution, which medlab cannot adapt.
struct ModelModule {
  std::string path;    // "language_model.model.layers.0.self_attn.q_proj"
  Part part;
  std::string weight;  // spec name of its weight
  bool linear = false;
  bool output_head = false;
  std::vector<int64_t> shape;
};

std::vector<ModelModule> model_modules(const ModelConfig& config, const TensorLayout& layout) {
  std::vector<ModelModule> out;
  const TextConfig& t = config.text;
  const std::string head_path = layout.head.substr(0, layout.head.size() - std::string(".weight").size());
  out.push_back({layout.text + "embed_tokens", Part::Text, "embed_tokens.weight", false, false, {t.vocab_size, t.hidden_size}});
  for (const TensorSpec& spec : expected_tensors(config)) {
    const bool text_linear = spec.part == Part::Text && spec.shape.size() == 2 && spec.name != "embed_tokens.weight";
    const bool vision_linear = spec.part == Part::Vision && spec.shape.size() == 2 && spec.name.starts_with("encoder.");
    if (!text_linear && !vision_linear) continue;
    if (vision_linear && layout.vision.empty()) continue;
    const std::string module = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
    out.push_back({(text_linear ? layout.text : layout.vision) + module, spec.part, spec.name, true, false, spec.shape});
  }
  if (config.vision && !layout.vision.empty())
    out.push_back({layout.vision + "embeddings.patch_embedding", Part::Vision, "embeddings.patch_embedding.weight", false,
                   false, {}});
  out.push_back({head_path, Part::Head, "lm_head.weight", true, true, {t.vocab_size, t.hidden_size}});
  return out;
}

// The tensors of the model under one layout's names (the head included even when tied), for matching the
// adapter's replacement tensors.
std::map<std::string, TensorSpec> model_tensors(const ModelConfig& config, const TensorLayout& layout) {
  std::map<std::string, TensorSpec> out;
  for (const TensorSpec& spec : expected_tensors(config)) {
    if (spec.part == Part::Vision && layout.vision.empty()) continue;
    if (spec.part == Part::Projector && layout.projector.empty()) continue;
    out.emplace(full_name(layout, spec), spec);
  }
  const TensorSpec head{"lm_head.weight", Part::Head, {config.text.vocab_size, config.text.hidden_size}};
  out.emplace(full_name(layout, head), head);
  return out;
}

struct RawModule {
  const TensorView* a = nullptr;
  const TensorView* b = nullptr;
};

}  // namespace

AdapterRequest parse_adapter_request(std::string_view text) {
  AdapterRequest request{fs::path(std::string(text)), 1.0f};
  const size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && colon + 1 < text.size()) {
    const std::string_view tail = text.substr(colon + 1);
    float scale = 0;
    const auto [end, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), scale);
    if (ec == std::errc() && end == tail.data() + tail.size()) {
      if (!std::isfinite(scale)) fail("--lora ", text, ": the scale must be a finite number");
      request.dir = fs::path(std::string(text.substr(0, colon)));
      request.scale = scale;
    }
  }
  if (request.dir.empty()) fail("--lora ", text, ": no adapter folder given");
  return request;
}

std::shared_ptr<const LoraAdapter> LoraAdapter::open(const fs::path& dir, const ModelConfig& config) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir.string(), ": not a folder (a PEFT adapter is a folder with ", kConfigFile, ")");
  const fs::path config_path = dir / kConfigFile, weights_path = dir / kWeightsFile;
  if (!fs::exists(config_path, ec)) fail(config_path.string(), ": missing; not a PEFT adapter folder?");
  if (!fs::exists(weights_path, ec)) {
    if (fs::exists(dir / "adapter_model.bin", ec))
      fail(weights_path.string(), ": missing; medlab does not read the pickled adapter_model.bin (save the adapter "
           "with safe_serialization=True)");
    fail(weights_path.string(), ": missing");
  }
  const AdapterConfig c = read_adapter_config(config_path);
  auto adapter = std::shared_ptr<LoraAdapter>(new LoraAdapter());
  adapter->dir_ = fs::absolute(dir);
  adapter->base_model_ = c.base_model;
  adapter->files_ = {fs::absolute(config_path).string(), fs::absolute(weights_path).string()};
  adapter->file_ = std::make_unique<SafetensorsFile>(weights_path.string());
  const SafetensorsFile& file = *adapter->file_;
  const std::string where = file.path();
  if (!file.byte_tensors().empty())
    fail(where, ": tensor '", file.byte_tensors().begin()->first, "' is U8; adapters hold f32, f16 or bf16 tensors");

  // Split the tensors into LoRA pairs (by module) and whole tensors (modules_to_save), names without the prefix.
  std::map<std::string, RawModule> pairs;
  std::map<std::string, const TensorView*> whole;
  for (const auto& [key, view] : file.tensors()) {
    if (!key.starts_with(kKeyPrefix))
      fail(where, ": tensor '", key, "' does not start with '", kKeyPrefix, "', as PEFT saves adapter tensors");
    std::string path = key.substr(std::string(kKeyPrefix).size());
    if (ends_with(path, ".lora_A.weight")) {
      pairs[path.substr(0, path.size() - 14)].a = &view;
    } else if (ends_with(path, ".lora_B.weight")) {
      pairs[path.substr(0, path.size() - 14)].b = &view;
    } else if (ends_with(path, ".lora_embedding_A") || ends_with(path, ".lora_embedding_B")) {
      fail(where, ": module '", path.substr(0, path.rfind('.')), "': LoRA on an embedding is not supported (PEFT "
           "versions differ in how they scale it for Gemma); adapt the linear layers, or save embed_tokens whole with "
           "modules_to_save");
    } else if (ends_with(path, ".lora_magnitude_vector")) {
      fail(where, ": module '", path.substr(0, path.rfind('.')), "': DoRA adapters are not supported");
    } else if (path.find(".lora_") != std::string::npos) {
      fail(where, ": tensor '", key, "' is not a LoRA weight medlab knows (lora_A.weight, lora_B.weight)");
    } else {
      // bias="all" saves an adapted layer's bias under its wrapped name.
      if (const size_t at = path.find(".base_layer."); at != std::string::npos) path.erase(at, 11);
      whole[path] = &view;
    }
  }

  // The layout the adapter's names follow: the first (published first) under which every name is the model's.
  const std::vector<TensorLayout>& layouts = known_layouts();
  std::optional<size_t> chosen;
  std::string first_unknown;
  for (size_t l = 0; l < layouts.size() && !chosen; ++l) {
    if (!config.multimodal() && !layouts[l].vision.empty()) continue;
    std::set<std::string> modules;
    for (const ModelModule& m : model_modules(config, layouts[l])) modules.insert(m.path);
    const std::map<std::string, TensorSpec> tensors = model_tensors(config, layouts[l]);
    std::string unknown;
    for (const auto& [module, pair] : pairs)
      if (!modules.count(module)) {
        unknown = module;
        break;
      }
    if (unknown.empty())
      for (const auto& [name, view] : whole)
        if (!tensors.count(name)) {
          unknown = name;
          break;
        }
    if (unknown.empty())
      chosen = l;
    else if (first_unknown.empty())
      first_unknown = unknown;
  }
  if (!chosen)
    fail(where, ": '", first_unknown, "' is not a module or tensor of this model (", config.architecture, ", ",
         config.text.num_hidden_layers, " layers); the adapter was made for another model");
  const TensorLayout& layout = layouts[*chosen];
  const std::vector<ModelModule> modules = model_modules(config, layout);
  const std::map<std::string, TensorSpec> tensors = model_tensors(config, layout);

  // The modules target_modules selects, by PEFT's rules; the modules_to_save never take LoRA.
  const auto selected = [&](const ModelModule& m) {
    for (const std::string& saved : c.modules_to_save)
      if (std::regex_match(m.path, python_regex("(^|.*\\.)" + saved + "($|\\..*)", config_path.string() + ": modules_to_save")))
        return false;
    if (!c.exclude_modules.empty() && c.exclude_modules.matches(m.path)) return false;
    if (c.target_modules.all_linear) {
      if (!m.linear || m.output_head) return false;
    } else if (!c.target_modules.matches(m.path)) {
      return false;
    }
    if (c.layers_to_transform && !c.target_modules.matches_exactly(m.path)) {
      const std::optional<int64_t> index = layer_index(m.path, c.layers_pattern);
      if (!index || !c.layers_to_transform->count(*index)) return false;
    }
    return true;
  };

  for (const ModelModule& m : modules) {
    const auto pair = pairs.find(m.path);
    const bool chosen_by_config = selected(m);
    if (pair == pairs.end()) {
      if (chosen_by_config && m.linear)
        fail(where, ": target_modules in ", kConfigFile, " selects '", m.path, "', but the file has no lora_A/lora_B for it");
      if (chosen_by_config)
        fail(config_path.string(), ": target_modules selects '", m.path, "' (",
             m.part == Part::Vision ? "a convolution" : "an embedding", "); medlab applies LoRA to linear layers only");
      continue;
    }
    if (!chosen_by_config)
      fail(where, ": has LoRA weights for '", m.path, "', which target_modules in ", kConfigFile, " does not select");
    if (!m.linear)
      fail(where, ": module '", m.path, "' is not a linear layer; medlab applies LoRA to linear layers only");
    const RawModule& raw = pair->second;
    if (!raw.a || !raw.b) fail(where, ": module '", m.path, "' has lora_", raw.a ? "A" : "B", " but no lora_", raw.a ? "B" : "A");
    const int64_t rows = m.shape[0], cols = m.shape[1];
    const int64_t rank = raw.a->shape.size() == 2 ? raw.a->shape[0] : -1;
    if (raw.a->shape.size() != 2 || raw.a->shape[1] != cols || raw.b->shape != std::vector<int64_t>{rows, rank})
      fail(where, ": module '", m.path, "': lora_A ", shape_string(raw.a->shape), " and lora_B ", shape_string(raw.b->shape),
           " do not fit its weight ", shape_string(m.shape), " (expected [r, ", cols, "] and [", rows, ", r])");
    const std::string pattern_where = config_path.string() + ": rank_pattern/alpha_pattern";
    const int64_t r = int64_t(pattern_value(c.rank_pattern, m.path, double(c.r), pattern_where));
    if (rank != r)
      fail(where, ": module '", m.path, "' has rank ", rank, ", but ", kConfigFile, " gives it r = ", r);
    const double alpha = pattern_value(c.alpha_pattern, m.path, c.lora_alpha, pattern_where);
    const float scaling = float(c.use_rslora ? alpha / std::sqrt(double(r)) : alpha / double(r));
    adapter->modules_.push_back({m.path, m.part, m.weight, rank, scaling, *raw.a, *raw.b});
  }
  for (const auto& [name, view] : whole) {
    const TensorSpec& spec = tensors.at(name);
    if (view->shape != spec.shape)
      fail(where, ": tensor '", name, "' has shape ", shape_string(view->shape), ", but the model's is ", shape_string(spec.shape));
    for (const Module& m : adapter->modules_)
      if (m.part == spec.part && m.weight == spec.name)
        fail(where, ": '", name, "' is both adapted by LoRA and saved whole");
    adapter->replacements_.push_back({name, spec.part, spec.name, *view});
  }
  return adapter;
}

std::span<const LowRankTensors> Checkpoint::low_rank(const std::string& full_name) const {
  const auto it = low_rank_.find(full_name);
  if (it == low_rank_.end()) return {};
  return it->second;
}

void Checkpoint::add_adapter(std::shared_ptr<const LoraAdapter> adapter, float scale, bool merge, int threads) {
  if (!std::isfinite(scale)) fail(adapter->dir().string(), ": adapter scale ", scale, " is not finite");
  const std::string embed_name = layout_.text + "embed_tokens.weight";
  const auto name_of = [&](Part part, const std::string& weight) { return full_name(layout_, TensorSpec{weight, part, {}}); };

  // Whole tensors first. A tied head that loses its embedding keeps the original one, as in PEFT, where
  // lm_head stays tied to the embedding module that modules_to_save wrapped, not to its trained copy.
  bool replaces_head = false;
  for (const LoraAdapter::Replacement& r : adapter->replacements()) replaces_head |= r.part == Part::Head;
  for (const LoraAdapter::Replacement& r : adapter->replacements()) {
    const std::string name = name_of(r.part, r.weight);
    if (name == embed_name && config_.text.tie_word_embeddings && !replaces_head) {
      tensors_[layout_.head] = tensors_.at(embed_name);
      config_.text.tie_word_embeddings = false;
    }
    if (r.part == Part::Head) config_.text.tie_word_embeddings = false;
    tensors_[name] = r.tensor;  // viewed in the adapter's file, which adapters_ keeps mapped
  }

  ThreadPool pool(std::max(1, threads));
  for (const LoraAdapter::Module& m : adapter->modules()) {
    const std::string name = name_of(m.part, m.weight);
    const float s = scale * m.scaling;
    if (!merge) {
      low_rank_[name].push_back({m.a, m.b, s});
      continue;
    }
    // A tied head is merged into its own copy of the embedding; the input embedding stays as it was.
    const bool tied_head = m.part == Part::Head && config_.text.tie_word_embeddings;
    const TensorView base = tensors_.at(tied_head ? embed_name : name);
    const int64_t rows = m.b.shape[0], cols = m.a.shape[1], rank = m.rank;
    if (base.shape != std::vector<int64_t>{rows, cols})
      fail(adapter->dir().string(), ": module '", m.path, "' does not fit tensor '", name, "' ", shape_string(base.shape));
    std::vector<float> a(size_t(rank * cols));
    for (int64_t i = 0; i < rank * cols; ++i) a[size_t(i)] = element_f32(m.a, i);
    std::vector<uint8_t> storage(row_bytes(base.dtype, cols) * size_t(rows));
    pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(cols)), delta(static_cast<size_t>(cols));
      for (int64_t r = begin; r < end; ++r) {
        dequantize_row(base.dtype, static_cast<const uint8_t*>(base.data) + row_bytes(base.dtype, r * cols), row.data(), cols);
        std::fill(delta.begin(), delta.end(), 0.0f);
        for (int64_t k = 0; k < rank; ++k) {  // (B @ A)[r] in f32, summed over k in order, as PEFT's delta
          const float b = element_f32(m.b, r * rank + k);
          const float* a_row = &a[size_t(k * cols)];
          for (int64_t j = 0; j < cols; ++j) delta[size_t(j)] += b * a_row[j];
        }
        for (int64_t j = 0; j < cols; ++j) row[size_t(j)] += delta[size_t(j)] * s;
        quantize_row(base.dtype, row.data(), storage.data() + row_bytes(base.dtype, cols) * size_t(r), cols);
      }
    });
    TensorView merged{base.dtype, base.shape, storage.data()};
    adopt_tensor(name, std::move(merged), std::move(storage));
    if (tied_head) config_.text.tie_word_embeddings = false;
  }
  adapters_.push_back({std::move(adapter), scale, merge});
}

}  // namespace medlab
