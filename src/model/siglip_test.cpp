// The vision tower and projector against an independent float64 implementation of transformers'
// SiglipVisionTransformer + Gemma3MultiModalProjector: on a micro model (12x12 image, 3x3 patches, 3 heads
// of 4, a 2x2 pool, vision width 12 projected to text width 16, vision eps 1e-3 so the projector's eps
// matters), and on the "tiny" test-model preset (256 patches: two query blocks).
#include "model/siglip.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "formats/test_checkpoint.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using Tensor = std::vector<double>;

nlohmann::json micro_config(bool multimodal) {
  const nlohmann::json text = {
      {"model_type", "gemma3_text"},
      {"vocab_size", 32},
      {"hidden_size", 16},
      {"intermediate_size", 24},
      {"num_hidden_layers", 1},
      {"num_attention_heads", 2},
      {"num_key_value_heads", 1},
      {"head_dim", 8},
      {"query_pre_attn_scalar", 8},
      {"sliding_window", 4},
      {"max_position_embeddings", 64},
  };
  if (!multimodal) {
    nlohmann::json config = text;
    config["architectures"] = {"Gemma3ForCausalLM"};
    return config;
  }
  return {
      {"architectures", {"Gemma3ForConditionalGeneration"}},
      {"model_type", "gemma3"},
      {"mm_tokens_per_image", 4},
      {"text_config", text},
      {"vision_config",
       {{"model_type", "siglip_vision_model"},
        {"hidden_size", 12},
        {"intermediate_size", 20},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 3},
        {"num_channels", 3},
        {"image_size", 12},
        {"patch_size", 3},
        {"layer_norm_eps", 1e-3},
        {"hidden_act", "gelu_pytorch_tanh"},
        {"vision_use_head", false}}},
  };
}

// Writes config.json and random bf16 values for every tensor the config implies, named as published.
void write_micro_model(const fs::path& dir, bool multimodal) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << micro_config(multimodal).dump(2);
  const ModelConfig config = load_model_config((dir / "config.json").string());
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<uint16_t>> storage;
  std::vector<TensorToWrite> tensors;
  for (const TensorSpec& spec : expected_tensors(config)) {
    int64_t n = 1;
    for (int64_t dim : spec.shape) n *= dim;
    // Vectors (norm weights, biases) ~ N(0, 0.5^2); matrices scaled by 1/sqrt(row length) so activations stay O(1).
    const float scale = spec.shape.size() == 1 ? 0.5f : float(1.0 / std::sqrt(double(n / spec.shape[0])));
    std::vector<uint16_t> bits(static_cast<size_t>(n));
    for (uint16_t& b : bits) b = f32_to_bf16(normal(rng) * scale);
    storage.push_back(std::move(bits));
    tensors.push_back({full_name(published_layout(config), spec), DType::BF16, spec.shape, storage.back().data()});
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
}

// ---- float64 reference, written from transformers' modeling_siglip.py and modeling_gemma3.py ----

Tensor read(const TensorView& t) {
  Tensor v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = element_f32(t, i);
  return v;
}

// nn.LayerNorm over each row of x [rows][n]: biased variance.
Tensor layer_norm64(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const size_t n = w.size();
  Tensor y(x.size());
  for (size_t r = 0; r < x.size() / n; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; ++i) mean += x[r * n + i] / double(n);
    for (size_t i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean) / double(n);
    for (size_t i = 0; i < n; ++i) y[r * n + i] = (x[r * n + i] - mean) / std::sqrt(var + eps) * w[i] + b[i];
  }
  return y;
}

// nn.Linear on each row: y = x W^T + b, W [out][in].
Tensor linear64(const Tensor& x, const Tensor& w, const Tensor& b) {
  const size_t out = b.size(), in = w.size() / out, rows = x.size() / in;
  Tensor y(rows * out);
  for (size_t r = 0; r < rows; ++r)
    for (size_t o = 0; o < out; ++o) {
      double sum = b[o];
      for (size_t i = 0; i < in; ++i) sum += x[r * in + i] * w[o * in + i];
      y[r * out + o] = sum;
    }
  return y;
}

Tensor reference_soft_tokens(const Checkpoint& ck, const std::vector<float>& pixels) {
  const VisionConfig& v = *ck.config().vision;
  auto V = [&](const std::string& name) { return read(ck.vision(name)); };
  const int64_t size = v.image_size, p = v.patch_size, side = size / p, n = side * side, d = v.hidden_size;
  const int64_t heads = v.num_attention_heads, hd = d / heads, channels = v.num_channels;

  // Conv2d(kernel = stride = p) evaluated directly; flatten(2).transpose(1, 2) puts patch (py, px) at row py*side+px.
  const Tensor conv = V("embeddings.patch_embedding.weight"), conv_bias = V("embeddings.patch_embedding.bias");
  const Tensor position = V("embeddings.position_embedding.weight");
  Tensor x(static_cast<size_t>(n * d));
  for (int64_t o = 0; o < d; ++o)
    for (int64_t py = 0; py < side; ++py)
      for (int64_t px = 0; px < side; ++px) {
        double sum = conv_bias[size_t(o)];
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t ky = 0; ky < p; ++ky)
            for (int64_t kx = 0; kx < p; ++kx)
              sum += conv[size_t(((o * channels + c) * p + ky) * p + kx)] *
                     pixels[size_t((c * size + py * p + ky) * size + px * p + kx)];
        const int64_t patch = py * side + px;
        x[size_t(patch * d + o)] = sum + position[size_t(patch * d + o)];
      }

  for (int64_t l = 0; l < v.num_hidden_layers; ++l) {
    const std::string pre = "encoder.layers." + std::to_string(l) + ".";
    auto W = [&](const std::string& name) { return V(pre + name); };
    const Tensor h = layer_norm64(x, W("layer_norm1.weight"), W("layer_norm1.bias"), v.layer_norm_eps);
    const Tensor q = linear64(h, W("self_attn.q_proj.weight"), W("self_attn.q_proj.bias"));
    const Tensor k = linear64(h, W("self_attn.k_proj.weight"), W("self_attn.k_proj.bias"));
    const Tensor val = linear64(h, W("self_attn.v_proj.weight"), W("self_attn.v_proj.bias"));
    Tensor attn(static_cast<size_t>(n * d));
    for (int64_t head = 0; head < heads; ++head)
      for (int64_t i = 0; i < n; ++i) {
        Tensor scores(static_cast<size_t>(n));
        double max = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          for (int64_t e = 0; e < hd; ++e)
            scores[size_t(j)] += q[size_t(i * d + head * hd + e)] * k[size_t(j * d + head * hd + e)];
          scores[size_t(j)] /= std::sqrt(double(hd));
          max = std::max(max, scores[size_t(j)]);
        }
        for (double& s : scores) sum += s = std::exp(s - max);
        for (int64_t j = 0; j < n; ++j)
          for (int64_t e = 0; e < hd; ++e)
            attn[size_t(i * d + head * hd + e)] += scores[size_t(j)] / sum * val[size_t(j * d + head * hd + e)];
      }
    const Tensor o = linear64(attn, W("self_attn.out_proj.weight"), W("self_attn.out_proj.bias"));
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    Tensor mid = linear64(layer_norm64(x, W("layer_norm2.weight"), W("layer_norm2.bias"), v.layer_norm_eps),
                          W("mlp.fc1.weight"), W("mlp.fc1.bias"));
    for (double& g : mid) g = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
    const Tensor down = linear64(mid, W("mlp.fc2.weight"), W("mlp.fc2.bias"));
    for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
  }
  x = layer_norm64(x, V("post_layernorm.weight"), V("post_layernorm.bias"), v.layer_norm_eps);

  // Projector: transpose to [d][side][side], AvgPool2d(k, k), flatten(2).transpose(1, 2), Gemma3RMSNorm with
  // the vision eps, einsum("btm,md->btd") with mm_input_projection_weight [d][text_hidden].
  const int64_t tokens = int64_t(std::llround(std::sqrt(double(ck.config().mm_tokens_per_image))));
  const int64_t kernel = side / tokens, text_d = ck.config().text.hidden_size;
  const Tensor norm = read(ck.projector("mm_soft_emb_norm.weight"));
  const Tensor projection = read(ck.projector("mm_input_projection_weight"));
  Tensor out(static_cast<size_t>(tokens * tokens * text_d));
  for (int64_t ty = 0; ty < tokens; ++ty)
    for (int64_t tx = 0; tx < tokens; ++tx) {
      Tensor pooled(static_cast<size_t>(d));
      double squares = 0;
      for (int64_t c = 0; c < d; ++c) {
        for (int64_t dy = 0; dy < kernel; ++dy)
          for (int64_t dx = 0; dx < kernel; ++dx)
            pooled[size_t(c)] +=
                x[size_t(((ty * kernel + dy) * side + tx * kernel + dx) * d + c)] / double(kernel * kernel);
        squares += pooled[size_t(c)] * pooled[size_t(c)];
      }
      const double inv_rms = 1.0 / std::sqrt(squares / double(d) + v.layer_norm_eps);
      for (int64_t c = 0; c < d; ++c) pooled[size_t(c)] *= inv_rms * (1.0 + norm[size_t(c)]);
      for (int64_t j = 0; j < text_d; ++j)
        for (int64_t c = 0; c < d; ++c)
          out[size_t((ty * tokens + tx) * text_d + j)] += pooled[size_t(c)] * projection[size_t(c * text_d + j)];
    }
  return out;
}

std::vector<float> random_pixels(const SiglipVision& model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> pixels(size_t(model.config().num_channels * model.image_size() * model.image_size()));
  for (float& p : pixels) p = uniform(rng);
  return pixels;
}

// Every kernel set, at two thread counts (which must agree bit for bit), against the reference.
void expect_matches_reference(const Checkpoint& checkpoint) {
  const SiglipVision model(checkpoint);
  const std::vector<float> pixels = random_pixels(model, 3);
  const Tensor expect = reference_soft_tokens(checkpoint, pixels);
  ASSERT_EQ(int64_t(expect.size()), model.tokens_per_image() * model.output_dim());
  double scale = 0;
  for (double e : expect) scale = std::max(scale, std::abs(e));
  for (const KernelTable* kernels : available_kernels()) {
    std::vector<float> first;
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      std::vector<float> out(expect.size());
      model.encode(pixels.data(), out.data(), pool, *kernels);
      double worst = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_TRUE(std::isfinite(out[i]));
        EXPECT_NEAR(out[i], expect[i], 1e-5 * (std::abs(expect[i]) + 0.1 * scale))
            << isa_name(kernels->isa) << " threads " << threads << " token " << i / size_t(model.output_dim())
            << " dim " << i % size_t(model.output_dim());
        worst = std::max(worst, std::abs(out[i] - expect[i]) / (std::abs(expect[i]) + 0.1 * scale));
      }
      std::cout << isa_name(kernels->isa) << ", " << threads << " thread(s): max relative difference " << worst << "\n";
      if (first.empty()) first = out;
      EXPECT_EQ(out, first) << isa_name(kernels->isa) << ": results depend on the thread count";
    }
  }
}

class SiglipReference : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(MEDLAB_BINARY_DIR) / "test-tmp" /
           (std::string("siglip_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SiglipReference, MicroModelMatchesFloat64) {
  write_micro_model(dir_, true);
  const Checkpoint checkpoint = Checkpoint::open(dir_.string());
  const SiglipVision model(checkpoint);
  EXPECT_EQ(model.image_size(), 12);
  EXPECT_EQ(model.num_patches(), 16);
  EXPECT_EQ(model.tokens_per_image(), 4);
  EXPECT_EQ(model.output_dim(), 16);
  expect_matches_reference(checkpoint);
}

TEST_F(SiglipReference, TinyPresetMatchesFloat64) {
  TestModelOptions options;
  options.preset = "tiny";
  options.seed = 1;
  write_test_checkpoint(options, dir_.string());
  const Checkpoint checkpoint = Checkpoint::open(dir_.string());
  const int64_t patches = SiglipVision(checkpoint).num_patches();
  ASSERT_GT(patches, SiglipVision::attention_rows(patches)) << "one attention call would take every query";
  expect_matches_reference(checkpoint);
}

TEST_F(SiglipReference, TextOnlyCheckpointIsRefused) {
  write_micro_model(dir_, false);
  const Checkpoint checkpoint = Checkpoint::open(dir_.string());
  try {
    SiglipVision model(checkpoint);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no vision tower"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace medlab
