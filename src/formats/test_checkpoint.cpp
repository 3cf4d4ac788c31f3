#include "formats/test_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "formats/bnb_nf4.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"

namespace fs = std::filesystem;

namespace medlab {
namespace {

using nlohmann::json;

// --- presets ---------------------------------------------------------------------------------------------

TextConfig text_config(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv_heads,
                       int64_t head_dim, double query_pre_attn_scalar, int64_t sliding_window, int64_t max_positions) {
  TextConfig t;
  t.vocab_size = 262208;  // the real vocabulary, so the real tokenizer's ids all have embeddings
  t.hidden_size = hidden;
  t.intermediate_size = intermediate;
  t.num_hidden_layers = layers;
  t.num_attention_heads = heads;
  t.num_key_value_heads = kv_heads;
  t.head_dim = head_dim;
  t.query_pre_attn_scalar = query_pre_attn_scalar;
  t.sliding_window = sliding_window;
  t.max_position_embeddings = max_positions;
  t.rms_norm_eps = 1e-6;
  t.rope_theta = 1e6;
  t.rope_local_base_freq = 1e4;
  t.rope_linear_factor = 8.0;
  for (int64_t i = 0; i < layers; ++i) t.layer_is_sliding.push_back((i + 1) % 6 != 0);  // sliding_window_pattern 6
  return t;
}

ModelConfig multimodal_config(TextConfig text, VisionConfig vision, int64_t mm_tokens_per_image) {
  ModelConfig c;
  c.architecture = "Gemma3ForConditionalGeneration";
  c.model_type = "gemma3";
  c.text = std::move(text);
  c.vision = vision;
  c.mm_tokens_per_image = mm_tokens_per_image;
  c.boi_token_index = 255999;
  c.eoi_token_index = 256000;
  c.image_token_index = 262144;
  c.eos_token_ids = {1, 106};
  return c;
}

VisionConfig vision_config(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t image_size,
                           int64_t patch_size) {
  VisionConfig v;
  v.hidden_size = hidden;
  v.intermediate_size = intermediate;
  v.num_hidden_layers = layers;
  v.num_attention_heads = heads;
  v.num_channels = 3;
  v.image_size = image_size;
  v.patch_size = patch_size;
  v.layer_norm_eps = 1e-6;
  return v;
}

// --- random weights -------------------------------------------------------------------------------------

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256** seeded from (seed, tensor name, block): each block of a tensor has its own stream, so
// values depend on nothing else, neither the order tensors are written in nor the number of threads.
class Normal {
 public:
  Normal(uint64_t seed, const std::string& name, uint64_t block) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
    for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
    uint64_t state = seed ^ h;
    state = splitmix64(state) ^ block;
    for (uint64_t& word : s_) word = splitmix64(state);
  }

  // Box-Muller, two values per pair of uniforms; float precision is plenty for random weights.
  float next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const float u1 = (float(next_u64() >> 40) + 1.0f) * 0x1.0p-24f;  // (0, 1]: log is finite
    const float u2 = float(next_u64() >> 40) * 0x1.0p-24f;
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float angle = 2 * std::numbers::pi_v<float> * u2;
    spare_ = r * std::sin(angle);
    has_spare_ = true;
    return r * std::cos(angle);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  uint64_t s_[4];
  float spare_ = 0;
  bool has_spare_ = false;
};

struct Init {
  float mean, stddev;
};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Scales that make the untrained model's next-token distribution peaked but not one-hot (top-1
// probability mostly 0.3-0.9). Gemma RMSNorms multiply by (1 + w); SigLIP LayerNorms by w.
//  - embed_tokens: std 1/sqrt(hidden), so the scaled input embedding has unit-size elements;
//  - post-attention norms: each layer adds vectors of size (1 + w) * sqrt(hidden), and they must outweigh
//    the input embedding (size sqrt(hidden)) or the model only repeats the token it just read: its logit
//    grows as sqrt(hidden / (2 * layers)) / (1 + w) times the others' spread. So 1 + w =
//    max(2, sqrt(hidden / (2 * layers))): 2 for the tiny presets, about 6 for full4b;
//  - post-feedforward norms: 1 + w ~ 0.12, so the MLP branch is felt but does not dominate. llama.cpp's
//    CPU GELU goes through an fp16 lookup table (about 1e-3 relative error); at the attention branch's
//    scale that alone moved llama.cpp's log-probabilities by up to 1.4e-2 from exact arithmetic, beyond
//    the 1e-3 the parity test allows. The MLP's own arithmetic is checked against float64 in gemma3_test;
//  - final norm: 1 + w ~ 5, so logits = final_hidden . embed_row have a spread of about 5 units;
//  - projections: std 1/sqrt(fan_in), keeping activations near unit size.
Init init_for(const TensorSpec& spec, const TextConfig& text) {
  const std::string& n = spec.name;
  const auto fan_in = [&] { return 1.0f / std::sqrt(float(spec.shape.back())); };
  switch (spec.part) {
    case TensorSpec::Part::Text:
      if (n == "embed_tokens.weight") return {0, fan_in()};
      if (n == "norm.weight") return {4.0f, 0.2f};
      if (ends_with(n, "post_feedforward_layernorm.weight")) return {-0.88f, 0.01f};
      if (ends_with(n, "post_attention_layernorm.weight"))
        return {std::max(2.0f, std::sqrt(float(text.hidden_size) / float(2 * text.num_hidden_layers))) - 1, 0.1f};
      if (ends_with(n, "norm.weight")) return {0, 0.1f};  // input, pre-feedforward, q and k norms
      return {0, fan_in()};
    case TensorSpec::Part::Vision:
      if (n == "embeddings.patch_embedding.weight")
        return {0, 1.0f / std::sqrt(float(spec.shape[1] * spec.shape[2] * spec.shape[3]))};
      if (n == "embeddings.position_embedding.weight") return {0, 0.5f};
      // A post-layernorm bias larger than its weight makes the soft tokens partly image-independent, so
      // an image moves the next-token log-probabilities by tenths of a unit or more, not by several units.
      // llama.cpp rounds the pixels to f16 (its im2col) and takes GELU from an f16 table: with weight 1
      // and bias 0.1 those roundings alone moved its log-probabilities by up to 1.4e-3, now 3.5e-4.
      if (n == "post_layernorm.weight") return {0.25f, 0.025f};
      if (n == "post_layernorm.bias") return {0, 1.0f};
      if (n.find("norm") != std::string::npos) return ends_with(n, ".weight") ? Init{1.0f, 0.1f} : Init{0, 0.1f};
      if (ends_with(n, ".bias")) return {0, 0.02f};
      return {0, fan_in()};
    case TensorSpec::Part::Head:
      return {0, fan_in()};  // as embed_tokens, whose place it takes
    case TensorSpec::Part::Projector:
      // mm_input_projection_weight is [vision_hidden, text_hidden] and used as x @ W: fan-in is rows.
      if (n == "mm_input_projection_weight") return {0, 1.0f / std::sqrt(float(spec.shape[0]))};
      return {0, 0.1f};  // mm_soft_emb_norm (Gemma RMSNorm)
  }
  return {0, 0};
}

void store(float v, DType dtype, uint8_t* out) { quantize_row(dtype, &v, out, 1); }  // f32, f16 or bf16

// Generates one tensor a chunk at a time, in parallel, straight into the writer, so even the 1.3 GB
// embedding of the full-size preset never sits in memory whole.
void write_normal_tensor(SafetensorsWriter& writer, const std::string& name, int64_t numel, Init init, DType dtype,
                         uint64_t seed, ThreadPool& pool) {
  constexpr int64_t kBlock = int64_t(1) << 16;  // elements per random stream
  constexpr int64_t kChunk = kBlock * 128;      // elements per write
  const size_t elem = block_bytes(dtype);
  std::vector<uint8_t> buffer(size_t(std::min(kChunk, numel)) * elem);
  for (int64_t chunk_begin = 0; chunk_begin < numel; chunk_begin += kChunk) {
    const int64_t n = std::min(kChunk, numel - chunk_begin);
    pool.parallel_for((n + kBlock - 1) / kBlock, [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        Normal normal(seed, name, uint64_t((chunk_begin / kBlock) + b));
        for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i)
          store(init.mean + init.stddev * normal.next(), dtype, &buffer[size_t(i) * elem]);
      }
    });
    writer.append(buffer.data(), size_t(n) * elem);
  }
}

void write_random_tensor(SafetensorsWriter& writer, const TensorSpec& spec, const std::string& name,
                         const TextConfig& text, DType dtype, uint64_t seed, ThreadPool& pool) {
  write_normal_tensor(writer, name, TensorView{dtype, spec.shape, nullptr}.numel(), init_for(spec, text), dtype, seed,
                      pool);
}

// --- the other files ------------------------------------------------------------------------------------

void write_json(const fs::path& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) fail(path.string(), ": write failed");
}

json token(const std::string& content) {
  return {{"content", content}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
}

std::string torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: fail("test models are f32, f16 or bf16, not ", dtype_name(dtype));
  }
}

// All of a tensor's values in f32, from the same streams as write_random_tensor.
std::vector<float> random_values(const TensorSpec& spec, const std::string& name, const TextConfig& text,
                                 uint64_t seed, ThreadPool& pool) {
  constexpr int64_t kBlock = int64_t(1) << 16;
  const Init init = init_for(spec, text);
  const int64_t numel = TensorView{DType::F32, spec.shape, nullptr}.numel();
  std::vector<float> x(static_cast<size_t>(numel));
  pool.parallel_for((numel + kBlock - 1) / kBlock, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      Normal normal(seed, name, uint64_t(b));
      for (int64_t i = b * kBlock; i < std::min(numel, (b + 1) * kBlock); ++i) x[size_t(i)] = init.mean + init.stddev * normal.next();
    }
  });
  return x;
}

// The decoder's projection matrices, which a load_in_4bit checkpoint keeps in bitsandbytes' parts.
bool is_bnb_linear(const TensorSpec& spec) {
  return spec.part == TensorSpec::Part::Text && spec.shape.size() == 2 && spec.name != "embed_tokens.weight";
}

// The safetensors entries of one bitsandbytes NF4 weight with double quantization, in name order.
std::vector<TensorToWrite> bnb_entries(const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
  const int64_t numel = shape[0] * shape[1], blocks = numel / 64;
  const int64_t state_bytes = int64_t(bnb_nf4_state_json(shape, torch_dtype_name(dtype), 0).size());
  return {{name, DType::F32, {numel / 2, 1}, nullptr, true},
          {name + ".absmax", DType::F32, {blocks}, nullptr, true},
          {name + ".nested_absmax", DType::F32, {(blocks + 255) / 256}, nullptr},
          {name + ".nested_quant_map", DType::F32, {256}, nullptr},
          {name + ".quant_map", DType::F32, {16}, nullptr},
          {name + ".quant_state.bitsandbytes__nf4", DType::F32, {state_bytes}, nullptr, true}};
}

void write_bnb_tensor(SafetensorsWriter& writer, const TensorSpec& spec, const std::string& name,
                      const TextConfig& text, DType dtype, uint64_t seed, ThreadPool& pool) {
  const std::vector<float> x = random_values(spec, name, text, seed, pool);
  const BnbNf4Parts p = bnb_nf4_quantize(x.data(), int64_t(x.size()));
  const std::string state = bnb_nf4_state_json(spec.shape, torch_dtype_name(dtype), p.nested_offset);
  writer.append(p.codes.data(), p.codes.size());
  writer.append(p.absmax.data(), p.absmax.size());
  writer.append(p.nested_absmax.data(), p.nested_absmax.size() * 4);
  writer.append(p.nested_quant_map.data(), p.nested_quant_map.size() * 4);
  writer.append(p.quant_map.data(), p.quant_map.size() * 4);
  writer.append(state.data(), state.size());
}

void write_support_files(const ModelConfig& config, const TestModelOptions& options, const fs::path& dir) {
  // As google/medgemma-4b-it's: Gemma's recommended sampling, stopping at <eos> or <end_of_turn>.
  write_json(dir / "generation_config.json", {{"bos_token_id", 2},
                                              {"cache_implementation", "hybrid"},
                                              {"do_sample", true},
                                              {"eos_token_id", config.eos_token_ids},
                                              {"pad_token_id", 0},
                                              {"top_k", 64},
                                              {"top_p", 0.95},
                                              {"transformers_version", "4.50.0"}});
  write_json(dir / "special_tokens_map.json", {{"boi_token", "<start_of_image>"},
                                               {"bos_token", token("<bos>")},
                                               {"eoi_token", "<end_of_image>"},
                                               {"eos_token", token("<eos>")},
                                               {"image_token", "<image_soft_token>"},
                                               {"pad_token", token("<pad>")},
                                               {"unk_token", token("<unk>")}});
  write_json(dir / "added_tokens.json", {{"<image_soft_token>", 262144}});
  if (config.multimodal()) {
    const int64_t side = config.vision->image_size;
    write_json(dir / "preprocessor_config.json", {{"do_convert_rgb", nullptr},
                                                  {"do_normalize", true},
                                                  {"do_pan_and_scan", nullptr},
                                                  {"do_rescale", true},
                                                  {"do_resize", true},
                                                  {"image_mean", {0.5, 0.5, 0.5}},
                                                  {"image_processor_type", "Gemma3ImageProcessor"},
                                                  {"image_seq_length", config.mm_tokens_per_image},
                                                  {"image_std", {0.5, 0.5, 0.5}},
                                                  {"pan_and_scan_max_num_crops", nullptr},
                                                  {"pan_and_scan_min_crop_size", nullptr},
                                                  {"pan_and_scan_min_ratio_to_activate", nullptr},
                                                  {"processor_class", "Gemma3Processor"},
                                                  {"resample", 2},
                                                  {"rescale_factor", 1.0 / 255},
                                                  {"size", {{"height", side}, {"width", side}}}});
    write_json(dir / "processor_config.json",
               {{"image_seq_length", config.mm_tokens_per_image}, {"processor_class", "Gemma3Processor"}});
  }

  // tokenizer.model (SentencePiece) is not written: only its tokenizer.json form is at hand, which is
  // what medlab and transformers' fast tokenizer read.
  if (!options.tokenizer_dir.empty()) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path from = fs::path(options.tokenizer_dir) / name;
      std::error_code ec;
      if (!fs::exists(from, ec))
        fail(from.string(),
             ": missing; run scripts/setup.sh (it installs the Gemma 3 tokenizer files) or pass "
             "--tokenizer-dir");
      fs::copy_file(from, dir / name, fs::copy_options::overwrite_existing, ec);
      if (ec) fail((dir / name).string(), ": cannot copy from ", from.string(), ": ", ec.message());
    }
  }

  write_json(dir / "medlab_test_model.json", {{"preset", options.preset},
                                              {"seed", options.seed},
                                              {"dtype", std::string(dtype_name(options.dtype))},
                                              {"note", "random weights, not a medical model"}});
  std::ofstream readme(dir / "README.md");
  readme << "# medlab test model: " << options.preset << " (seed " << options.seed << ")\n\n"
         << "RANDOM WEIGHTS. This is not MedGemma and not a medical model: its output is meaningless.\n"
         << "It was written by `medlab make-test-model` with the layout, file names and tokenizer of\n"
         << "google/medgemma-4b-it (or a text-only Gemma3ForCausalLM), so that medlab and other\n"
         << "Gemma 3 implementations can be tested and benchmarked against each other without the real\n"
         << "weights. medlab_test_model.json marks the folder as a test model.\n";
  if (!readme) fail((dir / "README.md").string(), ": write failed");
}

// Weights and index left by an earlier model would be read in place of, or beside, the new ones.
void remove_stale_weights(const fs::path& dir) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "model.safetensors" || name == "model.safetensors.index.json" ||
        (name.starts_with("model-") && ends_with(name, ".safetensors")))
      fs::remove(entry.path());
  }
}

}  // namespace

std::vector<std::string> test_model_presets() { return {"tiny", "tiny-text", "small-text", "full4b"}; }

ModelConfig test_model_config(const std::string& preset) {
  if (preset == "tiny") {
    // 64 px images in 4 px patches: a 16x16 grid pooled 4x4 to 16 tokens, the real 64x64 -> 16x16 ratio.
    // query_pre_attn_scalar = head_dim, the only scale llama.cpp applies to models other than 27B.
    return multimodal_config(text_config(64, 256, 8, 4, 2, 16, 16, 16, 4096), vision_config(32, 64, 2, 2, 64, 4), 16);
  }
  if (preset == "tiny-text") {
    // Shaped like medgemma-27b-text-it: a flat Gemma3ForCausalLM config, head_dim * heads != hidden.
    ModelConfig c;
    c.architecture = "Gemma3ForCausalLM";
    c.model_type = "gemma3_text";
    c.text = text_config(64, 256, 8, 4, 2, 32, 32, 16, 4096);
    c.eos_token_ids = {1, 106};
    return c;
  }
  if (preset == "small-text") {
    // The smallest text-only model whose weight rows (hidden, heads * head_dim, intermediate) are whole
    // 256-value K-quant super-blocks, as in every real MedGemma, so a Q4_K_M GGUF of it holds q4_K and
    // q6_K tensors rather than llama-quantize's q5_0/q5_1 fallbacks. 6 layers: the sixth is full-attention.
    ModelConfig c;
    c.architecture = "Gemma3ForCausalLM";
    c.model_type = "gemma3_text";
    c.text = text_config(256, 512, 6, 4, 2, 64, 64, 16, 4096);
    c.eos_token_ids = {1, 106};
    return c;
  }
  if (preset == "full4b") {
    return multimodal_config(text_config(2560, 10240, 34, 8, 4, 256, 256, 1024, 131072),
                             vision_config(1152, 4304, 27, 16, 896, 14), 256);
  }
  std::string known;
  for (const std::string& p : test_model_presets()) known += (known.empty() ? "" : ", ") + p;
  fail("unknown test model preset '", preset, "' (known: ", known, ")");
}

void write_test_checkpoint(const TestModelOptions& options, const std::string& out_dir) {
  ModelConfig config = test_model_config(options.preset);
  config.torch_dtype = torch_dtype_name(options.dtype);
  const fs::path dir(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(out_dir, ": cannot create: ", ec.message());
  remove_stale_weights(dir);

  // Tensors in name order, as transformers saves them.
  const TensorLayout layout = published_layout(config);
  std::vector<std::pair<std::string, TensorSpec>> tensors;
  for (const TensorSpec& spec : expected_tensors(config)) tensors.emplace_back(full_name(layout, spec), spec);
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  const auto bnb = [&](const TensorSpec& s) { return options.nf4 && is_bnb_linear(s); };
  // Each entry a tensor becomes in the file: itself, or its bitsandbytes parts.
  const auto entries = [&](const std::string& name, const TensorSpec& s) {
    return bnb(s) ? bnb_entries(name, s.shape, options.dtype)
                  : std::vector<TensorToWrite>{{name, options.dtype, s.shape, nullptr}};
  };
  const auto bytes_of = [&](const TensorSpec& s) {
    if (bnb(s)) return uint64_t(s.shape[0] * s.shape[1] / 2);  // the codes; the parts beside them are small
    return uint64_t(TensorView{options.dtype, s.shape, nullptr}.nbytes());
  };
  uint64_t total_bytes = 0;
  for (const auto& [name, spec] : tensors) total_bytes += bytes_of(spec);

  // Multimodal presets are split in two shards like medgemma-4b-it's: filled up to transformers' 5 GB
  // default, or, for a model smaller than that, to half of it. The text-only one is one model.safetensors.
  std::vector<std::vector<size_t>> shards(1);
  if (config.multimodal()) {
    constexpr uint64_t kMaxShardBytes = 5'000'000'000ull;
    const uint64_t limit = total_bytes > kMaxShardBytes ? kMaxShardBytes : (total_bytes + 1) / 2;
    uint64_t in_shard = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const uint64_t bytes = bytes_of(tensors[i].second);
      if (!shards.back().empty() && in_shard + bytes > limit) {
        shards.emplace_back();
        in_shard = 0;
      }
      shards.back().push_back(i);
      in_shard += bytes;
    }
  } else {
    for (size_t i = 0; i < tensors.size(); ++i) shards[0].push_back(i);
  }

  ThreadPool pool(int(std::max(1u, std::thread::hardware_concurrency())));
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char file_name[64];
    if (config.multimodal())
      std::snprintf(file_name, sizeof file_name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    else
      std::snprintf(file_name, sizeof file_name, "model.safetensors");
    std::vector<TensorToWrite> header;
    for (size_t i : shards[s])
      for (TensorToWrite& e : entries(tensors[i].first, tensors[i].second)) header.push_back(std::move(e));
    SafetensorsWriter writer((dir / file_name).string(), header);
    for (size_t i : shards[s]) {
      const auto& [name, spec] = tensors[i];
      if (bnb(spec))
        write_bnb_tensor(writer, spec, name, config.text, options.dtype, options.seed, pool);
      else
        write_random_tensor(writer, spec, name, config.text, options.dtype, options.seed, pool);
      for (const TensorToWrite& e : entries(name, spec)) weight_map[e.name] = file_name;
    }
    writer.finish();
  }
  if (config.multimodal())
    write_json(dir / "model.safetensors.index.json",
               {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}});

  json config_json = model_config_to_json(config);
  if (options.nf4)  // as transformers writes it for BitsAndBytesConfig(load_in_4bit, nf4, double quant)
    config_json["quantization_config"] = {{"_load_in_4bit", true},
                                          {"_load_in_8bit", false},
                                          {"bnb_4bit_compute_dtype", torch_dtype_name(options.dtype)},
                                          {"bnb_4bit_quant_storage", "uint8"},
                                          {"bnb_4bit_quant_type", "nf4"},
                                          {"bnb_4bit_use_double_quant", true},
                                          {"llm_int8_enable_fp32_cpu_offload", false},
                                          {"llm_int8_has_fp16_weight", false},
                                          {"llm_int8_skip_modules", nullptr},
                                          {"llm_int8_threshold", 6.0},
                                          {"load_in_4bit", true},
                                          {"load_in_8bit", false},
                                          {"quant_method", "bitsandbytes"}};
  write_json(dir / "config.json", config_json);
  write_support_files(config, options, dir);
}

void append_test_tensor(SafetensorsWriter& writer, const TensorSpec& spec, const std::string& name,
                        const TextConfig& text, DType dtype, uint64_t seed) {
  ThreadPool pool(int(std::max(1u, std::thread::hardware_concurrency())));
  write_random_tensor(writer, spec, name, text, dtype, seed, pool);
}

void append_normal_tensor(SafetensorsWriter& writer, const std::string& name, int64_t numel, float mean, float stddev,
                          DType dtype, uint64_t seed) {
  ThreadPool pool(int(std::max(1u, std::thread::hardware_concurrency())));
  write_normal_tensor(writer, name, numel, {mean, stddev}, dtype, seed, pool);
}

}  // namespace medlab
