// Gemma 3 decoder forward pass, top to bottom. Semantics follow Hugging Face transformers'
// Gemma3ForCausalLM / the language model of Gemma3ForConditionalGeneration, computed in f32.
#include "model/gemma3.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/quant.h"
#include "kernels/attention.h"

namespace medlab {
namespace {

// HF stores Gemma norm weights as w and multiplies by (1 + w), GGUF stores 1 + w (`includes_one`);
// medlab keeps (1 + w) in f32.
std::vector<float> norm_scale(const TensorView& t, int64_t n, const std::string& name, bool includes_one) {
  if (t.shape.size() != 1 || t.shape[0] != n) fail("tensor ", name, ": shape ", shape_string(t.shape), ", expected [", n, "]");
  std::vector<float> scale(static_cast<size_t>(n));
  const float one = includes_one ? 0.0f : 1.0f;
  for (int64_t i = 0; i < n; ++i) scale[size_t(i)] = one + element_f32(t, i);
  return scale;
}

// Rotary inverse frequencies computed as transformers does, in f32: 1 / base^(2i/d), divided by the
// linear scaling factor on global layers.
std::vector<float> rope_inverse_frequencies(double base, int64_t head_dim, double linear_factor) {
  std::vector<float> inv(static_cast<size_t>(head_dim / 2));
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float exponent = float(2 * i) / float(head_dim);
    inv[size_t(i)] = (1.0f / std::pow(float(base), exponent)) / float(linear_factor);
  }
  return inv;
}

void widen_row(const WeightMatrix& w, int64_t row, float* out) {
  dequantize_row(w.dtype, static_cast<const uint8_t*>(w.data) + row_bytes(w.dtype, row * w.cols), out, w.cols);
}

}  // namespace

Gemma3::Gemma3(const Checkpoint& checkpoint, int64_t n_vocab, int64_t max_image_tokens, int load_threads)
    : config_(checkpoint.config().text), n_vocab_(n_vocab), max_image_tokens_(std::max<int64_t>(0, max_image_tokens)) {
  const TextConfig& c = config_;
  if (n_vocab < 1 || n_vocab > c.vocab_size)
    fail("model: tokenizer vocabulary of ", n_vocab, " tokens does not fit the embedding's ", c.vocab_size, " rows");
  const int64_t q_dim = c.num_attention_heads * c.head_dim, kv_dim = c.num_key_value_heads * c.head_dim;
  const std::string& prefix = checkpoint.layout().text;
  const std::string embed_name = prefix + "embed_tokens.weight", head_name = checkpoint.layout().head;
  embed_ = linear_layer(checkpoint, embed_name, c.vocab_size, c.hidden_size).weight;
  head_ = first_rows(c.tie_word_embeddings ? linear_layer(checkpoint, embed_name, c.vocab_size, c.hidden_size, head_name)
                                           : linear_layer(checkpoint, head_name, c.vocab_size, c.hidden_size),
                     n_vocab);
  final_norm_ = norm_scale(checkpoint.text("norm.weight"), c.hidden_size, "norm.weight", checkpoint.norms_include_one());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    auto mat = [&](const std::string& name, int64_t rows, int64_t cols) {
      return linear_layer(checkpoint, prefix + p + name, rows, cols);
    };
    auto norm = [&](const std::string& name, int64_t n) {
      return norm_scale(checkpoint.text(p + name), n, p + name, checkpoint.norms_include_one());
    };
    Layer layer;
    layer.sliding = c.layer_is_sliding[size_t(i)];
    layer.input_norm = norm("input_layernorm.weight", c.hidden_size);
    layer.post_attention_norm = norm("post_attention_layernorm.weight", c.hidden_size);
    layer.pre_feedforward_norm = norm("pre_feedforward_layernorm.weight", c.hidden_size);
    layer.post_feedforward_norm = norm("post_feedforward_layernorm.weight", c.hidden_size);
    layer.q_norm = norm("self_attn.q_norm.weight", c.head_dim);
    layer.k_norm = norm("self_attn.k_norm.weight", c.head_dim);
    layer.q = mat("self_attn.q_proj.weight", q_dim, c.hidden_size);
    layer.k = mat("self_attn.k_proj.weight", kv_dim, c.hidden_size);
    layer.v = mat("self_attn.v_proj.weight", kv_dim, c.hidden_size);
    layer.o = mat("self_attn.o_proj.weight", c.hidden_size, q_dim);
    layer.gate = mat("mlp.gate_proj.weight", c.intermediate_size, c.hidden_size);
    layer.up = mat("mlp.up_proj.weight", c.intermediate_size, c.hidden_size);
    layer.down = mat("mlp.down_proj.weight", c.hidden_size, c.intermediate_size);
    layers_.push_back(std::move(layer));
  }
  std::vector<Linear*> linears{&head_};
  for (Layer& layer : layers_)
    linears.insert(linears.end(), {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down});
  ThreadPool pool(load_threads);
  packed_ = pack_layers(linears, checkpoint, pool);
  inv_freq_local_ = rope_inverse_frequencies(c.rope_local_base_freq, c.head_dim, 1.0);
  inv_freq_global_ = rope_inverse_frequencies(c.rope_theta, c.head_dim, c.rope_linear_factor);
  // Scores are scaled by query_pre_attn_scalar^-0.5, which is not always head_dim^-0.5 (27B: 168 vs 128).
  query_scale_ = float(1.0 / std::sqrt(c.query_pre_attn_scalar));
  embed_scale_ = std::sqrt(float(c.hidden_size));
}

void Gemma3::forward(Gemma3State& state, Gemma3Workspace& ws, std::span<const int32_t> tokens, float* logits,
                     std::span<const ImageEmbeddings> images) const {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail("model: forward needs at least one token");
  if (state.n_past_ + n > state.n_ctx_)
    fail("context: ", state.n_past_, " tokens so far plus ", n, " new exceed the context of ", state.n_ctx_, " tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= n_vocab_) fail("model: token id ", t, " is outside the vocabulary of ", n_vocab_);
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageEmbeddings& image = images[i];
    if (image.begin < 0 || image.length < 1 || image.length > max_image_tokens_ || image.begin + image.length > n ||
        (i > 0 && image.begin < images[i - 1].begin + images[i - 1].length))
      fail("model: image ", i, " spans tokens [", image.begin, ", ", image.begin + image.length,
           "), which is not an ordered run of at most ", max_image_tokens_, " tokens inside the ", n, " given");
  }
  size_t next_image = 0;
  for (int64_t begin = 0; begin < n;) {
    const int64_t end = chunk_end(begin, n, images);
    size_t first_image = next_image;
    while (next_image < images.size() && images[next_image].begin < end) ++next_image;
    std::vector<ImageEmbeddings> local(images.begin() + std::ptrdiff_t(first_image), images.begin() + std::ptrdiff_t(next_image));
    for (ImageEmbeddings& image : local) image.begin -= begin;
    const Segment segment{&state, 0, end - begin};
    forward_rows(ws, {&segment, 1}, tokens.subspan(size_t(begin), size_t(end - begin)), local, end == n ? logits : nullptr);
    begin = end;
  }
}

// Chunks of a fixed size, each grown to the end of an image it would split: a token's results depend
// only on the sequence, never on how the caller divided it.
int64_t Gemma3::chunk_end(int64_t begin, int64_t n, std::span<const ImageEmbeddings> images) const {
  int64_t end = std::min(n, begin + kPrefillChunk);
  for (const ImageEmbeddings& image : images)
    if (image.begin < end && end < image.begin + image.length) end = image.begin + image.length;
  return end;
}

void Gemma3::decode(std::span<Gemma3State* const> states, Gemma3Workspace& ws, std::span<const int32_t> tokens,
                    float* logits) const {
  const int64_t n = int64_t(states.size());
  if (n == 0 || tokens.size() != states.size())
    fail("model: decode needs one token per sequence, got ", tokens.size(), " for ", states.size());
  if (n > ws.max_rows_) fail("model: ", n, " sequences in one decode step; the workspace holds ", ws.max_rows_);
  std::vector<Segment> segments;
  for (int64_t i = 0; i < n; ++i) {
    Gemma3State& s = *states[size_t(i)];
    if (s.n_past_ + 1 > s.n_ctx_) fail("context: sequence ", i, " is full at ", s.n_ctx_, " tokens");
    if (tokens[size_t(i)] < 0 || tokens[size_t(i)] >= n_vocab_)
      fail("model: token id ", tokens[size_t(i)], " is outside the vocabulary of ", n_vocab_);
    for (const Segment& other : segments)
      if (other.state == &s) fail("model: a sequence appears twice in one decode step");
    segments.push_back({&s, i, 1});
  }
  forward_rows(ws, segments, tokens, {}, logits);
}

void Gemma3::forward_rows(Gemma3Workspace& ws, std::span<const Segment> segments, std::span<const int32_t> tokens,
                          std::span<const ImageEmbeddings> images, float* logits) const {
  const TextConfig& c = config_;
  const int64_t n = int64_t(tokens.size()), d = c.hidden_size;
  const float eps = float(c.rms_norm_eps);
  float* x = ws.x_.data();
  float* normed = ws.normed_.data();

  // Token embeddings, scaled by sqrt(hidden_size); image soft tokens replace theirs unscaled.
  for (const Segment& segment : segments)
    for (int64_t t = segment.first_row; t < segment.first_row + segment.rows; ++t)
      ws.position_[size_t(t)] = segment.state->n_past_ + t - segment.first_row;
  for (int64_t t = 0; t < n; ++t) {
    widen_row(embed_, tokens[size_t(t)], x + t * d);
    for (int64_t i = 0; i < d; ++i) x[t * d + i] *= embed_scale_;
    ws.image_first_[size_t(t)] = ws.image_last_[size_t(t)] = ws.position_[size_t(t)];
  }
  for (const ImageEmbeddings& image : images) {
    std::memcpy(x + image.begin * d, image.embeddings, size_t(image.length * d) * sizeof(float));
    for (int64_t t = image.begin; t < image.begin + image.length; ++t) {
      ws.image_first_[size_t(t)] = ws.position_[size_t(image.begin)];
      ws.image_last_[size_t(t)] = ws.position_[size_t(image.begin + image.length - 1)];
    }
  }

  rope_tables(ws, n);

  // Row-wise steps (norms, rotary embedding, residuals) split among the threads when a chunk has several
  // rows: each row's arithmetic is its own, so the split changes no bits.
  auto each_row = [&](auto&& step) {
    if (n == 1) return step(0);
    ws.pool_.parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) step(t);
    });
  };

  for (int64_t l = 0; l < int64_t(layers_.size()); ++l) {
    const Layer& layer = layers_[size_t(l)];

    // Attention block: norm, q/k/v projections, per-head norms and rotary embedding, attention over the
    // cache, output projection, post-attention norm, residual.
    each_row([&](int64_t t) { rms_norm(x + t * d, layer.input_norm.data(), normed + t * d, d, eps); });
    ws.linear(normed, n, layer.q, ws.q_.data());
    ws.linear(normed, n, layer.k, ws.k_.data());
    ws.linear(normed, n, layer.v, ws.v_.data());
    const int64_t half = c.head_dim / 2;
    each_row([&](int64_t t) {
      const size_t table = size_t((t * 2 + (layer.sliding ? 0 : 1)) * half);
      const float* cos = &ws.rope_cos_[table];
      const float* sin = &ws.rope_sin_[table];
      for (int64_t h = 0; h < c.num_attention_heads; ++h) {
        float* head = ws.q_.data() + (t * c.num_attention_heads + h) * c.head_dim;
        rms_norm(head, layer.q_norm.data(), head, c.head_dim, eps);
        apply_rope(head, cos, sin);
      }
      for (int64_t h = 0; h < c.num_key_value_heads; ++h) {
        float* head = ws.k_.data() + (t * c.num_key_value_heads + h) * c.head_dim;
        rms_norm(head, layer.k_norm.data(), head, c.head_dim, eps);
        apply_rope(head, cos, sin);
      }
    });
    attention(ws, segments, layer, l);
    ws.linear(ws.attn_.data(), n, layer.o, ws.proj_.data());
    each_row([&](int64_t t) {
      float* out = ws.proj_.data() + t * d;
      rms_norm(out, layer.post_attention_norm.data(), out, d, eps);
      for (int64_t i = 0; i < d; ++i) x[t * d + i] += out[i];
      // Feed-forward block: norm, GeGLU (gelu_tanh(gate) * up), down projection, post norm, residual.
      rms_norm(x + t * d, layer.pre_feedforward_norm.data(), normed + t * d, d, eps);
    });
    ws.linear(normed, n, layer.gate, ws.gate_.data());
    ws.linear(normed, n, layer.up, ws.up_.data());
    gelu_tanh_mul(ws.kernels_, ws.pool_, ws.gate_.data(), ws.up_.data(), n * c.intermediate_size, ws.precision_);
    ws.linear(ws.gate_.data(), n, layer.down, ws.proj_.data());
    each_row([&](int64_t t) {
      float* out = ws.proj_.data() + t * d;
      rms_norm(out, layer.post_feedforward_norm.data(), out, d, eps);
      for (int64_t i = 0; i < d; ++i) x[t * d + i] += out[i];
    });
  }
  for (const Segment& segment : segments) segment.state->n_past_ += segment.rows;

  // Logits of each segment's last token through the final norm and the output head, in one pass.
  if (logits) {
    for (size_t i = 0; i < segments.size(); ++i) {
      const int64_t last = segments[i].first_row + segments[i].rows - 1;
      rms_norm(x + last * d, final_norm_.data(), normed + int64_t(i) * d, d, eps);
    }
    const int64_t m = int64_t(segments.size());
    ws.linear(normed, m, head_, logits);
    if (c.final_logit_softcapping) {
      const float cap = float(*c.final_logit_softcapping);
      for (int64_t i = 0; i < m * n_vocab_; ++i) logits[i] = std::tanh(logits[i] / cap) * cap;
    }
  }
}

// cos and sin of every rotary angle of the chunk's positions, for sliding and for global layers: the
// same for every head and every layer of a kind. Angles are rounded to f32 as transformers computes them.
void Gemma3::rope_tables(Gemma3Workspace& ws, int64_t n) const {
  const int64_t half = config_.head_dim / 2;
  for (int64_t t = 0; t < n; ++t) {
    for (int kind = 0; kind < 2; ++kind) {
      const std::vector<float>& inv_freq = kind == 0 ? inv_freq_local_ : inv_freq_global_;
      const size_t table = size_t((t * 2 + kind) * half);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = float(ws.position_[size_t(t)]) * inv_freq[size_t(i)];
        ws.rope_cos_[table + size_t(i)] = float(std::cos(double(angle)));
        ws.rope_sin_[table + size_t(i)] = float(std::sin(double(angle)));
      }
    }
  }
}

// Rotates pairs (i, i + head_dim/2), as transformers' rotate_half does.
void Gemma3::apply_rope(float* head, const float* cos, const float* sin) const {
  const int64_t half = config_.head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = head[i], x2 = head[i + half];
    head[i] = x1 * cos[i] - x2 * sin[i];
    head[i + half] = x2 * cos[i] + x1 * sin[i];
  }
}

void Gemma3::attention(Gemma3Workspace& ws, std::span<const Segment> segments, const Layer& layer,
                       int64_t layer_index) const {
  const TextConfig& c = config_;
  const int64_t hd = c.head_dim, kv_heads = c.num_key_value_heads, heads = c.num_attention_heads;
  const int64_t group = heads / kv_heads;

  // Append each row's key and value to its sequence's cache; a position lives in slot position % capacity.
  for (const Segment& segment : segments) {
    Gemma3State::LayerCache& cache = segment.state->cache_[size_t(layer_index)];
    for (int64_t t = segment.first_row; t < segment.first_row + segment.rows; ++t) {
      const int64_t slot = ws.position_[size_t(t)] % cache.capacity;
      for (int64_t h = 0; h < kv_heads; ++h) {
        std::memcpy(&cache.k[size_t((h * cache.capacity + slot) * hd)], &ws.k_[size_t((t * kv_heads + h) * hd)], size_t(hd) * 4);
        std::memcpy(&cache.v[size_t((h * cache.capacity + slot) * hd)], &ws.v_[size_t((t * kv_heads + h) * hd)], size_t(hd) * 4);
      }
    }
  }

  // Causal, and sliding layers see only the last sliding_window positions (position - j < window); the
  // tokens of one image also see each other, both ways. Work is split into units of one KV head and up to
  // kRows query rows (tokens of one sequence x the heads that share the KV head).
  constexpr int64_t kRows = 64;
  if (group > kRows) fail("model: ", group, " query heads per KV head; at most ", kRows, " supported");
  const int64_t tokens_per_unit = std::max<int64_t>(1, kRows / group);
  std::vector<Gemma3Workspace::AttentionUnit>& units = ws.units_;
  units.clear();  // capacity for max_rows units is reserved: no allocation here
  for (size_t i = 0; i < segments.size(); ++i)
    for (int64_t t0 = segments[i].first_row; t0 < segments[i].first_row + segments[i].rows; t0 += tokens_per_unit)
      units.push_back({int64_t(i), t0, std::min(segments[i].first_row + segments[i].rows, t0 + tokens_per_unit)});
  const int64_t n_units = int64_t(units.size());
  const AttentionShape shape{hd, query_scale_,
                             c.attn_logit_softcapping ? float(*c.attn_logit_softcapping) : 0.0f};
  ws.pool_.parallel_for(kv_heads * n_units, [&](int64_t job_begin, int64_t job_end) {
    const float* q[kRows];
    float* out[kRows];
    int64_t first[kRows], last[kRows];
    for (int64_t job = job_begin; job < job_end; ++job) {
      const int64_t kv = job / n_units;
      const Gemma3Workspace::AttentionUnit& unit = units[size_t(job % n_units)];
      const Gemma3State::LayerCache& cache = segments[size_t(unit.segment)].state->cache_[size_t(layer_index)];
      int64_t rows = 0;
      for (int64_t t = unit.t0; t < unit.t1; ++t) {
        const int64_t position = ws.position_[size_t(t)];
        const int64_t window_first = layer.sliding ? std::max<int64_t>(0, position - c.sliding_window + 1) : 0;
        for (int64_t h = kv * group; h < (kv + 1) * group; ++h, ++rows) {
          q[rows] = &ws.q_[size_t((t * heads + h) * hd)];
          out[rows] = &ws.attn_[size_t((t * heads + h) * hd)];
          first[rows] = std::min(window_first, ws.image_first_[size_t(t)]);
          last[rows] = ws.image_last_[size_t(t)];
        }
      }
      const KvHead kv_head{cache.k.data() + kv * cache.capacity * hd, cache.v.data() + kv * cache.capacity * hd, hd,
                           cache.capacity};
      medlab::attention(ws.kernels_, {rows, q, out, first, last}, kv_head, shape);
    }
  });
}

Gemma3State::Gemma3State(const Gemma3& model, int64_t n_ctx) : n_ctx_(n_ctx) {
  const TextConfig& c = model.config();
  if (n_ctx < 1 || n_ctx > c.max_position_embeddings)
    fail("context: ", n_ctx, " tokens requested; the model allows 1 to ", c.max_position_embeddings);
  const int64_t kv_dim = c.num_key_value_heads * c.head_dim;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerCache cache;
    // A chunk's first query still needs the window before it while the chunk's own keys are written.
    cache.capacity = c.layer_is_sliding[size_t(l)] ? std::min(n_ctx, c.sliding_window + model.max_chunk()) : n_ctx;
    cache.k.assign(size_t(cache.capacity * kv_dim), 0.0f);
    cache.v.assign(size_t(cache.capacity * kv_dim), 0.0f);
    cache_.push_back(std::move(cache));
  }
}

size_t Gemma3State::kv_bytes() const {
  size_t bytes = 0;
  for (const LayerCache& cache : cache_) bytes += (cache.k.size() + cache.v.size()) * sizeof(float);
  return bytes;
}

Gemma3Workspace::Gemma3Workspace(const Gemma3& model, ThreadPool& pool, const KernelTable& kernels, Precision precision)
    : pool_(pool), kernels_(kernels), precision_(precision), max_rows_(model.max_chunk()) {
  const TextConfig& c = model.config();
  const int64_t rows = max_rows_, kv_dim = c.num_key_value_heads * c.head_dim, q_dim = c.num_attention_heads * c.head_dim;
  x_.resize(size_t(rows * c.hidden_size));
  normed_.resize(size_t(rows * c.hidden_size));
  proj_.resize(size_t(rows * c.hidden_size));
  q_.resize(size_t(rows * q_dim));
  attn_.resize(size_t(rows * q_dim));
  k_.resize(size_t(rows * kv_dim));
  v_.resize(size_t(rows * kv_dim));
  gate_.resize(size_t(rows * c.intermediate_size));
  up_.resize(size_t(rows * c.intermediate_size));
  position_.resize(size_t(rows));
  image_first_.resize(size_t(rows));
  image_last_.resize(size_t(rows));
  rope_cos_.resize(size_t(rows * c.head_dim));  // 2 kinds x head_dim / 2 per row
  rope_sin_.resize(size_t(rows * c.head_dim));
  units_.reserve(size_t(rows));
  std::vector<const Linear*> layers = {&model.head_};
  for (const Gemma3::Layer& l : model.layers_)
    for (const Linear* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) layers.push_back(m);
  low_rank_.resize(size_t(low_rank_scratch_floats(layers)));
}

void Gemma3Workspace::linear(const float* x, int64_t m, const Linear& layer, float* y) {
  medlab::linear(kernels_, pool_, x, m, layer, y, precision_, low_rank_);
}

}  // namespace medlab
