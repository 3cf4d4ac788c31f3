#include "formats/gguf_export.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"
#include "formats/gguf_names.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail(path.string(), ": not valid JSON: ", e.what());
  }
}

// --- vocabulary ------------------------------------------------------------------------------------------

// Score of tokens no merge produces (single characters, bytes, added tokens): below every merge, so
// llama.cpp only forms them from pieces when nothing else can merge, and never in Gemma's vocabulary.
constexpr float kNoMergeScore = -1e9f;

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(uint8_t(t[3])) &&
         std::isxdigit(uint8_t(t[4]));
}

// Added tokens that llama.cpp's converter makes control tokens although tokenizer.json does not mark
// them special (Gemma's <unusedN> and <mask>).
bool looks_special(const std::string& t) {
  const auto wraps = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.starts_with(open) && t.ends_with(close);
  };
  return t == "<pad>" || t == "<mask>" || wraps("<|", "|>") || wraps("<unused", ">");
}

// "content" of a tokenizer_config.json special token, written as a string or as an AddedToken object.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

std::string read_chat_template(const fs::path& dir, const json& config) {
  if (std::ifstream in(dir / "chat_template.jinja"); in) {
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  if (!config.contains("chat_template")) return "";
  const json& t = config.at("chat_template");
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())  // [{"name": "default", "template": ...}, ...]
    for (const json& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template"))
        return entry.at("template").get<std::string>();
  return "";
}

}  // namespace

GgufVocab gguf_vocab_from_tokenizer(const fs::path& dir, int64_t max_vocab) {
  const fs::path path = dir / "tokenizer.json";
  const std::string where = path.string();
  if (!fs::exists(path)) fail(where, ": missing; the GGUF embeds the tokenizer, so the model folder needs it");
  const json tok = read_json_file(path);
  if (!tok.contains("model") || !tok["model"].is_object()) fail(where, ": has no \"model\" object");
  const json& model = tok["model"];
  if (model.value("type", "") != "BPE")
    fail(where, ": model.type is '", model.value("type", ""), "'; only BPE tokenizers (Gemma 3's) are supported");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(where, ": model.vocab must be an object");
  if (!model.contains("merges") || !model["merges"].is_array()) fail(where, ": model.merges must be a list");

  GgufVocab v;
  const auto place = [&](const std::string& text, int64_t id, const std::string& what) {
    if (id < 0 || id >= max_vocab)
      fail(where, ": ", what, " '", text, "' has id ", id, ", outside the embedding's ", max_vocab, " rows");
    if (size_t(id) >= v.tokens.size()) {
      v.tokens.resize(size_t(id) + 1);
      v.scores.resize(size_t(id) + 1, kNoMergeScore);
      v.types.resize(size_t(id) + 1, int32_t(GgufTokenType::Unused));
    }
    if (!v.tokens[size_t(id)].empty() && v.tokens[size_t(id)] != text)
      fail(where, ": id ", id, " is both '", v.tokens[size_t(id)], "' and ", what, " '", text, "'");
    v.tokens[size_t(id)] = text;
  };

  std::unordered_map<std::string, int64_t> ids;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) fail(where, ": model.vocab['", text, "'] must be an integer id");
    place(text, id.get<int64_t>(), "vocabulary token");
    ids[text] = id.get<int64_t>();
    v.types[size_t(id.get<int64_t>())] = int32_t(is_byte_token(text) ? GgufTokenType::Byte : GgufTokenType::Normal);
  }

  const json& merges = model["merges"];
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string merged;
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merged = m[0].get<std::string>() + m[1].get<std::string>();
    } else if (m.is_string() && m.get<std::string>().find(' ', 1) != std::string::npos) {  // older "a b" form
      std::string s = m.get<std::string>();
      s.erase(s.find(' ', 1), 1);
      merged = std::move(s);
    } else {
      fail(where, ": model.merges[", rank, "] is not a pair of strings");
    }
    const auto it = ids.find(merged);
    if (it == ids.end()) fail(where, ": model.merges[", rank, "] makes '", merged, "', which is not in model.vocab");
    float& score = v.scores[size_t(it->second)];
    score = std::max(score, -float(rank));  // ranks < 2^24 are exact in a float
  }

  if (tok.contains("added_tokens")) {
    for (const json& a : tok["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string() ||
          !a["id"].is_number_integer())
        fail(where, ": added_tokens entries need an integer id and a string content");
      const std::string content = a["content"].get<std::string>();
      const int64_t id = a["id"].get<int64_t>();
      place(content, id, "added token");
      ids.emplace(content, id);
      GgufTokenType type;
      if (a.value("special", false) || looks_special(content))
        type = GgufTokenType::Control;
      else if (content.find("\xe2\x96\x81") != std::string::npos)
        // Runs of "▁" are added tokens that Hugging Face matches only against a literal "▁" in the raw
        // text; spaces reach them through merges, which llama.cpp reproduces for normal tokens.
        type = GgufTokenType::Normal;
      else
        type = GgufTokenType::UserDefined;  // "\n", "<b>", ...: split out of the text before merging
      v.types[size_t(id)] = int32_t(type);
    }
  }

  const fs::path config_path = dir / "tokenizer_config.json";
  const json config = fs::exists(config_path) ? read_json_file(config_path) : json::object();
  const auto id_of = [&](const std::optional<std::string>& text, const char* fallback, const char* role) -> uint32_t {
    const std::string t = text.value_or(fallback);
    const auto it = ids.find(t);
    if (it == ids.end()) fail(where, ": the ", role, " token '", t, "' is not in the vocabulary");
    return uint32_t(it->second);
  };
  const std::string model_unk = model.contains("unk_token") && model["unk_token"].is_string()
                                    ? model["unk_token"].get<std::string>() : "<unk>";
  v.bos = id_of(config_token(config, "bos_token"), "<bos>", "bos");
  v.eos = id_of(config_token(config, "eos_token"), "<eos>", "eos");
  v.unk = id_of(config_token(config, "unk_token"), model_unk.c_str(), "unk");
  v.pad = id_of(config_token(config, "pad_token"), "<pad>", "pad");
  v.types[v.unk] = int32_t(GgufTokenType::Unknown);
  v.add_bos = config.value("add_bos_token", true);
  v.add_eos = config.value("add_eos_token", false);
  v.chat_template = read_chat_template(dir, config);

  // llama.cpp needs every id to have a distinct, non-empty text.
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.tokens[id].empty()) v.tokens[id] = "[PAD" + std::to_string(id) + "]";
    if (const auto [it, fresh] = seen.emplace(v.tokens[id], id); !fresh)
      fail(where, ": ids ", it->second, " and ", id, " have the same text '", v.tokens[id], "'");
  }
  return v;
}

// --- weights ---------------------------------------------------------------------------------------------

namespace {

std::vector<GgufPlannedTensor> plan_tensors(const Checkpoint& ck, GgufType matrix_type, bool medium_mix,
                                            int64_t n_vocab) {
  std::vector<GgufPlannedTensor> plan;
  const int64_t n_layers = ck.config().text.num_hidden_layers;
  for (const GgufTensorName& n : gguf_text_names(ck.config().text)) {
    const bool head = n.part == TensorSpec::Part::Head;  // an untied output head
    const std::string name = head ? ck.layout().head : ck.layout().text + n.hf;
    TensorView view = head ? ck.tensors().at(name) : ck.text(n.hf);
    if (n.hf == "embed_tokens.weight" || head) view.shape[0] = n_vocab;  // the leading rows: those with tokens
    // Gemma's RMSNorm scales by 1 + w; llama.cpp's by its weight, so 1 is added (unless already there).
    const float shift = n.gemma_norm && !ck.norms_include_one() ? 1.0f : 0.0f;
    std::vector<int64_t> ne(view.shape.rbegin(), view.shape.rend());  // GGUF lists the row length first
    // llama.cpp keeps 1-D tensors in f32, as its converter writes them.
    const GgufType type = ne.size() == 1 ? GgufType::F32 : gguf_matrix_type(n.gguf, ne[0], n_layers, matrix_type, medium_mix);
    plan.push_back({n.gguf, view, name, shift, type, std::move(ne)});
  }
  return plan;
}

// `start` and `count` are whole rows, so whole blocks of a quantized source.
void to_f32(const TensorView& t, int64_t start, int64_t count, float* out) {
  dequantize_row(t.dtype, static_cast<const uint8_t*>(t.data) + row_bytes(t.dtype, start), out, count);
}

// Encodes n floats as `type` into `out` (resized). n is a whole number of rows.
void encode(GgufType type, const float* x, int64_t n, std::vector<uint8_t>& out, const std::string& name) {
  out.resize(size_t(n / gguf_block_elements(type)) * gguf_block_bytes(type));
  gguf_encode_row(type, x, n, out.data());
  if (type == GgufType::F16) {
    const auto* h = reinterpret_cast<const uint16_t*>(out.data());
    for (int64_t i = 0; i < n; ++i)
      if ((h[i] & 0x7c00u) == 0x7c00u && std::isfinite(x[i]))
        fail("tensor '", name, "': value ", x[i], " overflows f16; convert with --type bf16 or f32");
  }
}

bool same_storage(DType d, GgufType t) { return d != DType::NF4 && d != DType::Q8_K && gguf_type_of(d) == t; }

void write_tensor(GgufWriter& w, const GgufPlannedTensor& p) {
  const TensorView& t = p.source;
  w.begin_tensor(p.gguf_name);
  if (p.shift == 0.0f && same_storage(t.dtype, p.type)) {
    w.write(t.data, t.nbytes());  // straight from the mapped file
  } else {
    const int64_t row = p.ne[0], rows = t.numel() / row;
    const int64_t chunk_rows = std::max<int64_t>(1, (int64_t(1) << 20) / row);  // ~4 MB of f32 at a time
    std::vector<float> f(size_t(std::min(rows, chunk_rows) * row));
    std::vector<uint8_t> out;
    for (int64_t r = 0; r < rows; r += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - r) * row;
      to_f32(t, r * row, n, f.data());
      if (p.shift != 0.0f)
        for (int64_t i = 0; i < n; ++i) f[size_t(i)] += p.shift;
      encode(p.type, f.data(), n, out, p.source_name);
      w.write(out.data(), out.size());
    }
  }
  w.end_tensor();
}

}  // namespace

void write_gguf_tensors(GgufWriter& w, const std::vector<GgufPlannedTensor>& plan, const GgufProgress& progress) {
  for (const GgufPlannedTensor& p : plan) w.add_tensor(p.gguf_name, p.type, p.ne);
  for (size_t i = 0; i < plan.size(); ++i) {
    write_tensor(w, plan[i]);
    if (progress) progress(plan[i].gguf_name, i + 1, plan.size());
  }
}

uint32_t gguf_file_type(GgufType t, bool medium_mix) {  // llama_ftype; a pure K type counts as its _S mix
  switch (t) {
    case GgufType::F32: return 0;
    case GgufType::F16: return 1;
    case GgufType::Q4_0: return 2;
    case GgufType::Q8_0: return 7;
    case GgufType::Q5_0: return 8;
    case GgufType::Q5_1: return 9;
    case GgufType::Q4_K: return medium_mix ? 15 : 14;
    case GgufType::Q5_K: return medium_mix ? 17 : 16;
    case GgufType::Q6_K: return 18;
    case GgufType::BF16: return 32;
  }
  return 0;
}

GgufType gguf_type_of(DType d) {
  switch (d) {
    case DType::F32: return GgufType::F32;
    case DType::F16: return GgufType::F16;
    case DType::BF16: return GgufType::BF16;
    case DType::Q8_0: return GgufType::Q8_0;
    case DType::Q4_0: return GgufType::Q4_0;
    case DType::Q4_K: return GgufType::Q4_K;
    case DType::Q5_K: return GgufType::Q5_K;
    case DType::Q6_K: return GgufType::Q6_K;
    case DType::Q8_K:
    case DType::NF4:
    case DType::Q4_0x16:
    case DType::Q4_Kx16:
    case DType::Q5_Kx16:
    case DType::Q6_Kx16: break;
  }
  fail("GGUF has no type for ", dtype_name(d), " weights; choose one with --type");
}

GgufType gguf_matrix_type(const std::string& gguf_name, int64_t row_length, int64_t n_layers, GgufType base,
                          bool medium_mix) {
  if (gguf_block_elements(base) == 1) return base;
  GgufType type = base;
  if (medium_mix) {
    // llama-quantize gives every layer in the first and last eighth, and every third one between, more bits.
    const auto more_bits = [n_layers](int64_t i) {
      return i < n_layers / 8 || i >= 7 * n_layers / 8 || (i - n_layers / 8) % 3 == 2;
    };
    int64_t layer = -1;
    if (gguf_name.starts_with("blk.")) std::from_chars(gguf_name.data() + 4, gguf_name.data() + gguf_name.size(), layer);
    if (gguf_name == "token_embd.weight" || gguf_name == "output.weight") {  // the output head (token_embd when tied)
      type = row_length % gguf_block_elements(base) != 0 ? GgufType::Q8_0 : GgufType::Q6_K;
    } else if ((gguf_name.ends_with(".attn_v.weight") || gguf_name.ends_with(".ffn_down.weight")) && more_bits(layer)) {
      type = GgufType::Q6_K;
    }
  }
  if (row_length % gguf_block_elements(type) == 0) return type;
  // llama-quantize's fallbacks for rows that are not whole blocks, then f16 when those do not fit either.
  GgufType fallback;
  switch (type) {
    case GgufType::Q4_K: fallback = GgufType::Q5_0; break;
    case GgufType::Q5_K: fallback = GgufType::Q5_1; break;
    case GgufType::Q6_K: fallback = GgufType::Q8_0; break;
    default:
      fail("GGUF tensor '", gguf_name, "': row length ", row_length, " is not a multiple of ",
           gguf_block_elements(type), ", so it cannot be stored as ", gguf_type_name(type));
  }
  return row_length % gguf_block_elements(fallback) == 0 ? fallback : GgufType::F16;
}

namespace {

// llama.cpp's gemma3 marks layer il as sliding when il % period < period - 1 (period 0: all sliding).
// Returns the period that reproduces the config's layer kinds.
uint32_t sliding_period(const TextConfig& t, const std::string& where) {
  const auto& sliding = t.layer_is_sliding;
  const auto first_global = std::find(sliding.begin(), sliding.end(), false);
  const uint32_t period = first_global == sliding.end() ? 0 : uint32_t(first_global - sliding.begin()) + 1;
  for (size_t il = 0; il < sliding.size(); ++il) {
    const bool llama = period == 0 || il % period < period - 1;
    if (llama != sliding[il])
      fail(where, ": layer ", il, " is ", sliding[il] ? "sliding" : "full", "-attention, but llama.cpp's gemma3 "
           "can only express a repeating pattern of sliding layers ending in one full layer");
  }
  return period;
}

void add_model_metadata(GgufWriter& w, const Checkpoint& ck, const GgufExportOptions& options, GgufType type) {
  const TextConfig& t = ck.config().text;
  const std::string where = (ck.dir() / "config.json").string();
  // llama.cpp has no key for the query scale: gemma3 uses 1/sqrt(head_dim), except for its 27B
  // (62 layers), where it uses 1/sqrt(hidden / heads). The model must want the same.
  const double llama_scalar = t.num_hidden_layers == 62 ? double(t.hidden_size) / double(t.num_attention_heads)
                                                        : double(t.head_dim);
  if (std::abs(t.query_pre_attn_scalar - llama_scalar) > 1e-6 * llama_scalar)
    fail(where, ": query_pre_attn_scalar is ", t.query_pre_attn_scalar, ", but llama.cpp's gemma3 scales queries "
         "by 1/sqrt(", llama_scalar, ") for this shape and has no key to change it");
  if (t.attn_logit_softcapping)
    fail(where, ": attn_logit_softcapping is set, which llama.cpp's gemma3 does not apply");

  const std::string name = options.name.empty() ? ck.dir().filename().string() : options.name;
  w.add_string("general.architecture", "gemma3");
  w.add_string("general.name", name);
  w.add_u32("general.file_type", gguf_file_type(type, options.medium_mix));
  w.add_u32("general.alignment", GgufWriter::kAlignment);
  w.add_u32("gemma3.context_length", uint32_t(t.max_position_embeddings));
  w.add_u32("gemma3.embedding_length", uint32_t(t.hidden_size));
  w.add_u32("gemma3.block_count", uint32_t(t.num_hidden_layers));
  w.add_u32("gemma3.feed_forward_length", uint32_t(t.intermediate_size));
  w.add_u32("gemma3.attention.head_count", uint32_t(t.num_attention_heads));
  w.add_u32("gemma3.attention.head_count_kv", uint32_t(t.num_key_value_heads));
  w.add_u32("gemma3.attention.key_length", uint32_t(t.head_dim));
  w.add_u32("gemma3.attention.value_length", uint32_t(t.head_dim));
  w.add_f32("gemma3.attention.layer_norm_rms_epsilon", float(t.rms_norm_eps));
  w.add_f32("gemma3.rope.freq_base", float(t.rope_theta));  // full-attention layers
  if (t.rope_linear_factor != 1.0) {  // llama.cpp, like transformers, scales only the full-attention layers
    w.add_string("gemma3.rope.scaling.type", "linear");
    w.add_f32("gemma3.rope.scaling.factor", float(t.rope_linear_factor));
  }
  if (std::find(t.layer_is_sliding.begin(), t.layer_is_sliding.end(), true) != t.layer_is_sliding.end()) {
    w.add_u32("gemma3.attention.sliding_window", uint32_t(t.sliding_window));
    w.add_u32("gemma3.attention.sliding_window_pattern", sliding_period(t, where));
    w.add_f32("gemma3.rope.freq_base_swa", float(t.rope_local_base_freq));
  }
  if (t.final_logit_softcapping) w.add_f32("gemma3.final_logit_softcapping", float(*t.final_logit_softcapping));
}

void add_vocab_metadata(GgufWriter& w, const GgufVocab& v) {
  w.add_string("tokenizer.ggml.model", "llama");  // llama.cpp's SentencePiece tokenizer
  w.add_string("tokenizer.ggml.pre", "default");
  w.add_strings("tokenizer.ggml.tokens", v.tokens);
  w.add_f32s("tokenizer.ggml.scores", v.scores);
  w.add_i32s("tokenizer.ggml.token_type", v.types);
  w.add_u32("tokenizer.ggml.bos_token_id", v.bos);
  w.add_u32("tokenizer.ggml.eos_token_id", v.eos);
  w.add_u32("tokenizer.ggml.unknown_token_id", v.unk);
  w.add_u32("tokenizer.ggml.padding_token_id", v.pad);
  w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  w.add_bool("tokenizer.ggml.add_space_prefix", false);  // Gemma's normalizer adds no leading "▁"
  if (!v.chat_template.empty()) w.add_string("tokenizer.chat_template", v.chat_template);
}

}  // namespace

GgufExportSummary export_gguf(const Checkpoint& ck, const std::string& out_path, const GgufExportOptions& options,
                              const GgufProgress& progress) {
  const TensorView& embed = ck.text("embed_tokens.weight");
  const GgufType type = options.type.value_or(gguf_type_of(embed.dtype));
  const GgufVocab vocab = gguf_vocab_from_tokenizer(ck.dir(), embed.shape[0]);
  if (options.medium_mix && type != GgufType::Q4_K && type != GgufType::Q5_K)
    fail("the _m mix exists for q4_k and q5_k, not ", gguf_type_name(type));
  const std::vector<GgufPlannedTensor> plan = plan_tensors(ck, type, options.medium_mix, int64_t(vocab.tokens.size()));

  GgufWriter w(out_path);
  add_model_metadata(w, ck, options, type);
  add_vocab_metadata(w, vocab);
  write_gguf_tensors(w, plan, progress);
  w.finish();
  return {type, plan.size(), w.data_bytes(), int64_t(vocab.tokens.size())};
}

}  // namespace medlab
