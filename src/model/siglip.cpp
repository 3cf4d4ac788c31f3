// SigLIP vision tower and Gemma 3 multimodal projector, top to bottom. Semantics follow Hugging Face
// transformers' SiglipVisionTransformer (vision_use_head false) and Gemma3MultiModalProjector, in f32:
//
//   patches   Conv2d(channels -> hidden, kernel = stride = patch) + bias, patches in row-major order
//   + position_embedding[patch]
//   layers    x += out_proj(attention(layer_norm1(x)));  x += fc2(gelu_tanh(fc1(layer_norm2(x))))
//             attention: all patches see all patches (no mask), scores scaled by head_dim^-0.5
//   post_layernorm
//   projector average-pool the patch grid to tokens_per_side^2, Gemma RMSNorm (1 + w, eps = the vision
//             layer_norm_eps), then x @ mm_input_projection_weight.
#include "model/siglip.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"

namespace medlab {
namespace {

void check_shape(const TensorView& t, const std::vector<int64_t>& shape, const std::string& name) {
  if (t.shape != shape) fail("tensor ", name, ": shape ", shape_string(t.shape), ", expected ", shape_string(shape));
}

// Norm weights and biases are small: widened to f32 once.
std::vector<float> vector_f32(const TensorView& t, int64_t n, const std::string& name) {
  check_shape(t, {n}, name);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = element_f32(t, i);
  return v;
}

// The element-wise steps between the matmuls, each over rows split between the threads.

// y[r][c] += bias[c] for `rows` rows of bias.size() columns.
void add_bias(float* y, const std::vector<float>& bias, int64_t rows, ThreadPool& pool) {
  const int64_t cols = int64_t(bias.size());
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t c = 0; c < cols; ++c) y[r * cols + c] += bias[size_t(c)];
  });
}

// y[t][c] + bias[c] for `rows` rows of heads x head_dim columns, written head by head: out[h][t][0..head_dim).
void add_bias_by_head(const float* y, const std::vector<float>& bias, int64_t rows, int64_t head_dim, float* out,
                      ThreadPool& pool) {
  const int64_t cols = int64_t(bias.size()), heads = cols / head_dim;
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t r = begin; r < end; ++r)
        for (int64_t i = 0; i < head_dim; ++i)
          out[(h * rows + r) * head_dim + i] = y[r * cols + h * head_dim + i] + bias[size_t(h * head_dim + i)];
  });
}

// The residual connection around a projection with bias: x[r][c] += proj[r][c] + bias[c].
void add_residual(float* x, const float* proj, const std::vector<float>& bias, int64_t rows, ThreadPool& pool) {
  const int64_t cols = int64_t(bias.size());
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t c = 0; c < cols; ++c) x[r * cols + c] += proj[r * cols + c] + bias[size_t(c)];
  });
}

// layer_norm of each of `rows` rows of `cols` values, from x into out (which may be x).
void layer_norm_rows(const float* x, const std::vector<float>& weight, const std::vector<float>& bias, float* out,
                     int64_t rows, int64_t cols, float eps, ThreadPool& pool) {
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) layer_norm(x + t * cols, weight.data(), bias.data(), out + t * cols, cols, eps);
  });
}

}  // namespace

// Activations for one image, [num_patches][width] each.
struct SiglipVision::Scratch {
  std::vector<float> x;                    // the residual stream, [hidden]
  std::vector<float> normed;               // layer-norm output, [hidden]
  std::vector<float> q, attn, proj;       // [hidden]
  std::vector<float> k, v;                 // [heads][patches][head_dim]
  std::vector<float> mlp;                  // [intermediate]
  std::vector<float> low_rank;             // LoRA updates' scratch
  Precision precision = Precision::Exact;  // for the weight matmuls and attention
};

SiglipVision::SiglipVision(const Checkpoint& checkpoint) {
  const ModelConfig& mc = checkpoint.config();
  if (!mc.multimodal()) fail(checkpoint.dir().string(), ": ", mc.architecture, " has no vision tower");
  config_ = *mc.vision;
  const VisionConfig& c = config_;
  const int64_t d = c.hidden_size, p = c.patch_size;
  patches_per_side_ = c.image_size / p;
  tokens_per_side_ = int64_t(std::llround(std::sqrt(double(mc.mm_tokens_per_image))));
  if (tokens_per_side_ * tokens_per_side_ != mc.mm_tokens_per_image || patches_per_side_ % tokens_per_side_ != 0)
    fail("model: mm_tokens_per_image ", mc.mm_tokens_per_image, " is not a square grid dividing ", patches_per_side_,
         " patches per side");
  output_dim_ = mc.text.hidden_size;
  head_dim_ = d / c.num_attention_heads;

  const std::string& prefix = checkpoint.layout().vision;
  auto tensor = [&](const std::string& name) -> const TensorView& { return checkpoint.vision(name); };
  auto mat = [&](const std::string& name, int64_t rows, int64_t cols) {
    return linear_layer(checkpoint, prefix + name, rows, cols);
  };
  auto vec = [&](const std::string& name, int64_t n) { return vector_f32(tensor(name), n, prefix + name); };

  // The conv kernel [hidden][channels][p][p] is, row by row, a [hidden][channels*p*p] matrix whose columns
  // are ordered (channel, ky, kx): patches are unfolded in that order to match.
  const std::string patch_name = "embeddings.patch_embedding.weight";
  const TensorView& patch = tensor(patch_name);
  check_shape(patch, {d, c.num_channels, p, p}, prefix + patch_name);
  patch_embedding_ = {patch.dtype, d, c.num_channels * p * p, patch.data};
  patch_bias_ = vec("embeddings.patch_embedding.bias", d);
  position_embedding_ = tensor("embeddings.position_embedding.weight");
  check_shape(position_embedding_, {num_patches(), d}, prefix + "embeddings.position_embedding.weight");

  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = "encoder.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.norm1_weight = vec(l + "layer_norm1.weight", d);
    layer.norm1_bias = vec(l + "layer_norm1.bias", d);
    layer.norm2_weight = vec(l + "layer_norm2.weight", d);
    layer.norm2_bias = vec(l + "layer_norm2.bias", d);
    layer.q = mat(l + "self_attn.q_proj.weight", d, d);
    layer.k = mat(l + "self_attn.k_proj.weight", d, d);
    layer.v = mat(l + "self_attn.v_proj.weight", d, d);
    layer.out = mat(l + "self_attn.out_proj.weight", d, d);
    layer.q_bias = vec(l + "self_attn.q_proj.bias", d);
    layer.k_bias = vec(l + "self_attn.k_proj.bias", d);
    layer.v_bias = vec(l + "self_attn.v_proj.bias", d);
    layer.out_bias = vec(l + "self_attn.out_proj.bias", d);
    layer.fc1 = mat(l + "mlp.fc1.weight", c.intermediate_size, d);
    layer.fc1_bias = vec(l + "mlp.fc1.bias", c.intermediate_size);
    layer.fc2 = mat(l + "mlp.fc2.weight", d, c.intermediate_size);
    layer.fc2_bias = vec(l + "mlp.fc2.bias", d);
    layers_.push_back(std::move(layer));
  }
  std::vector<const Linear*> linears;
  for (const Layer& l : layers_)
    for (const Linear* m : {&l.q, &l.k, &l.v, &l.out, &l.fc1, &l.fc2}) linears.push_back(m);
  low_rank_floats_ = low_rank_scratch_floats(linears);
  post_norm_weight_ = vec("post_layernorm.weight", d);
  post_norm_bias_ = vec("post_layernorm.bias", d);

  const std::string& projector_prefix = checkpoint.layout().projector;
  const std::string norm_name = "mm_soft_emb_norm.weight";
  soft_norm_scale_ = vector_f32(checkpoint.projector(norm_name), d, projector_prefix + norm_name);
  if (!checkpoint.norms_include_one())  // Gemma's RMSNorm multiplies by (1 + w); GGUF stores 1 + w already
    for (float& w : soft_norm_scale_) w += 1.0f;

  const std::string projection_name = "mm_input_projection_weight";
  const TensorView& projection = checkpoint.projector(projection_name);
  check_shape(projection, {d, output_dim_}, projector_prefix + projection_name);
  const size_t elem = block_bytes(projection.dtype);
  const auto* from = static_cast<const uint8_t*>(projection.data);
  projection_t_.resize(size_t(d * output_dim_) * elem);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < output_dim_; ++j)
      std::memcpy(&projection_t_[size_t(j * d + i) * elem], from + size_t(i * output_dim_ + j) * elem, elem);
  projection_dtype_ = projection.dtype;
}

void SiglipVision::encode(const float* pixels, float* out, ThreadPool& pool, const KernelTable& kernels,
                          Precision precision) const {
  Encoding encoding(*this, pixels, out, precision);
  while (!encoding.done()) encoding.step(pool, kernels);
}

SiglipVision::Encoding::Encoding(const SiglipVision& vision, const float* pixels, float* out, Precision precision)
    : vision_(vision), pixels_(pixels), out_(out), scratch_(std::make_unique<Scratch>()) {
  const int64_t n = vision.num_patches(), d = vision.config_.hidden_size;
  Scratch& s = *scratch_;
  s.precision = precision;
  for (std::vector<float>* buffer : {&s.x, &s.normed, &s.q, &s.k, &s.v, &s.attn, &s.proj})
    buffer->resize(size_t(n * d));
  s.mlp.resize(size_t(n * vision.config_.intermediate_size));
  s.low_rank.resize(size_t(vision.low_rank_floats_));
}

SiglipVision::Encoding::~Encoding() = default;

void SiglipVision::Encoding::step(ThreadPool& pool, const KernelTable& kernels) {
  const SiglipVision& v = vision_;
  const int64_t n = v.num_patches(), d = v.config_.hidden_size;
  const float eps = float(v.config_.layer_norm_eps);
  Scratch& s = *scratch_;
  const int64_t current = next_step_++;
  if (current == 0) return v.embed_patches(pixels_, s, pool, kernels);
  if (current <= int64_t(v.layers_.size())) {
    const Layer& layer = v.layers_[size_t(current - 1)];
    layer_norm_rows(s.x.data(), layer.norm1_weight, layer.norm1_bias, s.normed.data(), n, d, eps, pool);
    v.attention(layer, s, pool, kernels);
    layer_norm_rows(s.x.data(), layer.norm2_weight, layer.norm2_bias, s.normed.data(), n, d, eps, pool);
    return v.mlp(layer, s, pool, kernels);
  }
  layer_norm_rows(s.x.data(), v.post_norm_weight_, v.post_norm_bias_, s.x.data(), n, d, eps, pool);
  v.project(s, out_, pool, kernels);
  scratch_.reset();  // the scratch is large; free it as soon as the output is written
}

void SiglipVision::embed_patches(const float* pixels, Scratch& s, ThreadPool& pool, const KernelTable& kernels) const {
  const int64_t p = config_.patch_size, size = config_.image_size, side = patches_per_side_;
  const int64_t n = num_patches(), d = config_.hidden_size, unfolded = patch_embedding_.cols;
  // Each patch unfolded to one row ordered (channel, ky, kx), so the convolution is one matmul.
  std::vector<float> patches(size_t(n * unfolded));
  for (int64_t py = 0; py < side; ++py)
    for (int64_t px = 0; px < side; ++px) {
      float* row = &patches[size_t((py * side + px) * unfolded)];
      for (int64_t ch = 0; ch < config_.num_channels; ++ch)
        for (int64_t ky = 0; ky < p; ++ky)
          std::memcpy(row + (ch * p + ky) * p, pixels + (ch * size + py * p + ky) * size + px * p, size_t(p) * 4);
    }
  matmul(kernels, pool, patches.data(), n, patch_embedding_, s.x.data(), s.precision);
  add_bias(s.x.data(), patch_bias_, n, pool);
  for (int64_t i = 0; i < n * d; ++i) s.x[size_t(i)] += element_f32(position_embedding_, i);
}

void SiglipVision::attention(const Layer& layer, Scratch& s, ThreadPool& pool, const KernelTable& kernels) const {
  const int64_t n = num_patches(), d = config_.hidden_size, hd = head_dim_;
  linear(kernels, pool, s.normed.data(), n, layer.q, s.q.data(), s.precision, s.low_rank);
  add_bias(s.q.data(), layer.q_bias, n, pool);
  // Keys and values head by head, so that the rows a head's attention reads for every block of queries lie
  // together in memory rather than one per 4.6 KB (and per page).
  linear(kernels, pool, s.normed.data(), n, layer.k, s.proj.data(), s.precision, s.low_rank);
  add_bias_by_head(s.proj.data(), layer.k_bias, n, hd, s.k.data(), pool);
  linear(kernels, pool, s.normed.data(), n, layer.v, s.proj.data(), s.precision, s.low_rank);
  add_bias_by_head(s.proj.data(), layer.v_bias, n, hd, s.v.data(), pool);

  // Every patch sees every patch: fused attention calls of attention_rows(n) queries of one head.
  const AttentionShape shape{hd, float(1.0 / std::sqrt(double(hd))), 0.0f};
  const int64_t call_rows = attention_rows(n), calls = (n + call_rows - 1) / call_rows;
  pool.parallel_for(config_.num_attention_heads * calls, [&](int64_t unit_begin, int64_t unit_end) {
    std::vector<const float*> q(static_cast<size_t>(call_rows));
    std::vector<float*> out(static_cast<size_t>(call_rows));
    const std::vector<int64_t> first(static_cast<size_t>(call_rows), 0), last(static_cast<size_t>(call_rows), n - 1);
    for (int64_t unit = unit_begin; unit < unit_end; ++unit) {
      const int64_t h = unit / calls, q0 = unit % calls * call_rows, rows = std::min(call_rows, n - q0);
      for (int64_t r = 0; r < rows; ++r) {
        q[size_t(r)] = &s.q[size_t((q0 + r) * d + h * hd)];
        out[size_t(r)] = &s.attn[size_t((q0 + r) * d + h * hd)];
      }
      medlab::attention(kernels, {rows, q.data(), out.data(), first.data(), last.data()},
                        {&s.k[size_t(h * n * hd)], &s.v[size_t(h * n * hd)], hd, n}, shape, s.precision);
    }
  });
  linear(kernels, pool, s.attn.data(), n, layer.out, s.proj.data(), s.precision, s.low_rank);
  add_residual(s.x.data(), s.proj.data(), layer.out_bias, n, pool);
}

void SiglipVision::mlp(const Layer& layer, Scratch& s, ThreadPool& pool, const KernelTable& kernels) const {
  const int64_t n = num_patches(), inter = config_.intermediate_size;
  linear(kernels, pool, s.normed.data(), n, layer.fc1, s.mlp.data(), s.precision, s.low_rank);
  pool.parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* row = &s.mlp[size_t(t * inter)];
      if (s.precision == Precision::Fast) {
        for (int64_t i = 0; i < inter; ++i) row[i] += layer.fc1_bias[size_t(i)];
        kernels.gelu_tanh_fast(row, inter);
      } else {
        for (int64_t i = 0; i < inter; ++i) row[i] = gelu_tanh(row[i] + layer.fc1_bias[size_t(i)]);
      }
    }
  });
  linear(kernels, pool, s.mlp.data(), n, layer.fc2, s.proj.data(), s.precision, s.low_rank);
  add_residual(s.x.data(), s.proj.data(), layer.fc2_bias, n, pool);
}

void SiglipVision::project(Scratch& s, float* out, ThreadPool& pool, const KernelTable& kernels) const {
  const int64_t d = config_.hidden_size, side = patches_per_side_, tokens = tokens_per_side_;
  const int64_t kernel = side / tokens;
  // Average-pool kernel x kernel squares of the patch grid; token (ty, tx) is row ty * tokens + tx.
  std::vector<float> pooled(size_t(tokens_per_image() * d), 0.0f);
  for (int64_t ty = 0; ty < tokens; ++ty)
    for (int64_t tx = 0; tx < tokens; ++tx) {
      float* token = &pooled[size_t((ty * tokens + tx) * d)];
      for (int64_t dy = 0; dy < kernel; ++dy)
        for (int64_t dx = 0; dx < kernel; ++dx) {
          const float* patch = &s.x[size_t(((ty * kernel + dy) * side + tx * kernel + dx) * d)];
          for (int64_t i = 0; i < d; ++i) token[i] += patch[i];
        }
      for (int64_t i = 0; i < d; ++i) token[i] /= float(kernel * kernel);
      rms_norm(token, soft_norm_scale_.data(), token, d, float(config_.layer_norm_eps));
    }
  matmul(kernels, pool, pooled.data(), tokens_per_image(), {projection_dtype_, output_dim_, d, projection_t_.data()},
         out, s.precision);
}

}  // namespace medlab
