// The decoder against an independent float64 implementation of transformers' Gemma 3 text model, on
// a micro model whose head_dim differs from hidden/heads and whose query_pre_attn_scalar differs from
// head_dim (as in MedGemma 27B), with a sliding window shorter than the sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/quantize_weights.h"
#include "formats/safetensors.h"
#include "formats/test_checkpoint.h"
#include "model/gemma3.h"

namespace medlab {
namespace {

constexpr int kVocab = 40, kHidden = 12, kInter = 20, kLayers = 3, kHeads = 4, kKvHeads = 2, kHeadDim = 6;
constexpr int kWindow = 3;
constexpr double kQueryScalar = 10.0, kEps = 1e-6, kLocalBase = 10000.0, kGlobalBase = 1e6, kLinear = 8.0;

using Tensor = std::vector<double>;

struct MicroModel {
  std::map<std::string, Tensor> weights;  // HF names without prefix, values as stored (bf16-exact)
  std::filesystem::path dir;
};

// Writes a Gemma3ForCausalLM checkpoint (layers 0 and 2 sliding, layer 1 global) with bf16 weights.
MicroModel write_micro_model(const std::filesystem::path& dir) {
  MicroModel m;
  m.dir = dir;
  std::filesystem::create_directories(dir);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs = {{"embed_tokens.weight", {kVocab, kHidden}},
                                                                     {"norm.weight", {kHidden}}};
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      specs.push_back({p + n + ".weight", {kHidden}});
    specs.push_back({p + "self_attn.q_norm.weight", {kHeadDim}});
    specs.push_back({p + "self_attn.k_norm.weight", {kHeadDim}});
    specs.push_back({p + "self_attn.q_proj.weight", {kHeads * kHeadDim, kHidden}});
    specs.push_back({p + "self_attn.k_proj.weight", {kKvHeads * kHeadDim, kHidden}});
    specs.push_back({p + "self_attn.v_proj.weight", {kKvHeads * kHeadDim, kHidden}});
    specs.push_back({p + "self_attn.o_proj.weight", {kHidden, kHeads * kHeadDim}});
    specs.push_back({p + "mlp.gate_proj.weight", {kInter, kHidden}});
    specs.push_back({p + "mlp.up_proj.weight", {kInter, kHidden}});
    specs.push_back({p + "mlp.down_proj.weight", {kHidden, kInter}});
  }
  std::vector<std::vector<uint16_t>> storage;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, shape] : specs) {
    const int64_t n = shape.size() == 1 ? shape[0] : shape[0] * shape[1];
    const float scale = shape.size() == 1 ? 0.3f : 0.5f;
    std::vector<uint16_t> bits(static_cast<size_t>(n));
    Tensor values;
    for (auto& b : bits) {
      b = f32_to_bf16(normal(rng) * scale);
      values.push_back(bf16_to_f32(b));
    }
    m.weights["model." + name] = values;
    storage.push_back(std::move(bits));
    tensors.push_back({"model." + name, DType::BF16, shape, storage.back().data()});
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
  const nlohmann::json config = {
      {"architectures", {"Gemma3ForCausalLM"}},
      {"model_type", "gemma3_text"},
      {"torch_dtype", "bfloat16"},
      {"vocab_size", kVocab},
      {"hidden_size", kHidden},
      {"intermediate_size", kInter},
      {"num_hidden_layers", kLayers},
      {"num_attention_heads", kHeads},
      {"num_key_value_heads", kKvHeads},
      {"head_dim", kHeadDim},
      {"query_pre_attn_scalar", kQueryScalar},
      {"rms_norm_eps", kEps},
      {"rope_theta", kGlobalBase},
      {"rope_local_base_freq", kLocalBase},
      {"rope_scaling", {{"rope_type", "linear"}, {"factor", kLinear}}},
      {"sliding_window", kWindow},
      {"layer_types", {"sliding_attention", "full_attention", "sliding_attention"}},
      {"max_position_embeddings", 512},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"attn_logit_softcapping", nullptr},
      {"final_logit_softcapping", nullptr},
      {"bos_token_id", 2},
      {"eos_token_id", 1},
      {"pad_token_id", 0},
  };
  std::ofstream(dir / "config.json") << config.dump(2);
  return m;
}

// ---- float64 reference, written from transformers' modeling_gemma3.py ----

Tensor rms_norm64(const Tensor& x, const Tensor& w) {
  double ms = 0;
  for (double v : x) ms += v * v;
  const double inv = 1.0 / std::sqrt(ms / double(x.size()) + kEps);
  Tensor y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * (1.0 + w[i]);
  return y;
}

Tensor linear64(const Tensor& w, const Tensor& x, int rows) {
  const size_t cols = x.size();
  Tensor y(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) y[size_t(r)] += w[size_t(r) * cols + c] * x[c];
  return y;
}

void rope64(double* head, int position, bool sliding) {
  const double base = sliding ? kLocalBase : kGlobalBase, factor = sliding ? 1.0 : kLinear;
  const int half = kHeadDim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = position / std::pow(base, 2.0 * i / kHeadDim) / factor;
    const double x1 = head[i], x2 = head[i + half];
    head[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
    head[i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
  }
}

struct ReferenceImage {
  int begin = 0, length = 0;
  std::vector<float> embeddings;  // [length][kHidden]
};

// Logits after each position of `tokens`, with an optional image whose rows replace the embeddings.
std::vector<Tensor> reference_logits(const MicroModel& m, const std::vector<int32_t>& tokens,
                                     const ReferenceImage& image = {}) {
  auto W = [&](const std::string& n) -> const Tensor& { return m.weights.at("model." + n); };
  const int n = int(tokens.size());
  std::vector<Tensor> x(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < kHidden; ++i) {
      const bool in_image = t >= image.begin && t < image.begin + image.length;
      x[size_t(t)].push_back(in_image ? double(image.embeddings[size_t((t - image.begin) * kHidden + i)])
                                      : W("embed_tokens.weight")[size_t(tokens[size_t(t)] * kHidden + i)] * std::sqrt(double(kHidden)));
    }
  auto in_image = [&](int t) { return t >= image.begin && t < image.begin + image.length; };
  const bool sliding[kLayers] = {true, false, true};
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    std::vector<Tensor> q(static_cast<size_t>(n)), k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
    for (int t = 0; t < n; ++t) {
      const Tensor h = rms_norm64(x[size_t(t)], W(p + "input_layernorm.weight"));
      q[size_t(t)] = linear64(W(p + "self_attn.q_proj.weight"), h, kHeads * kHeadDim);
      k[size_t(t)] = linear64(W(p + "self_attn.k_proj.weight"), h, kKvHeads * kHeadDim);
      v[size_t(t)] = linear64(W(p + "self_attn.v_proj.weight"), h, kKvHeads * kHeadDim);
      for (int hh = 0; hh < kHeads; ++hh) {
        Tensor head(q[size_t(t)].begin() + hh * kHeadDim, q[size_t(t)].begin() + (hh + 1) * kHeadDim);
        head = rms_norm64(head, W(p + "self_attn.q_norm.weight"));
        rope64(head.data(), t, sliding[l]);
        std::copy(head.begin(), head.end(), q[size_t(t)].begin() + hh * kHeadDim);
      }
      for (int hh = 0; hh < kKvHeads; ++hh) {
        Tensor head(k[size_t(t)].begin() + hh * kHeadDim, k[size_t(t)].begin() + (hh + 1) * kHeadDim);
        head = rms_norm64(head, W(p + "self_attn.k_norm.weight"));
        rope64(head.data(), t, sliding[l]);
        std::copy(head.begin(), head.end(), k[size_t(t)].begin() + hh * kHeadDim);
      }
    }
    for (int t = 0; t < n; ++t) {
      Tensor attn(static_cast<size_t>(kHeads * kHeadDim));
      for (int hh = 0; hh < kHeads; ++hh) {
        const int kv = hh / (kHeads / kKvHeads);
        std::vector<double> scores;
        std::vector<int> keys;
        for (int j = 0; j < n; ++j) {
          // transformers: the (sliding) causal mask OR "both tokens belong to the same image".
          const bool causal = j <= t && !(sliding[l] && t - j >= kWindow);
          if (!causal && !(in_image(t) && in_image(j))) continue;
          double s = 0;
          for (int d = 0; d < kHeadDim; ++d) s += q[size_t(t)][size_t(hh * kHeadDim + d)] * k[size_t(j)][size_t(kv * kHeadDim + d)];
          scores.push_back(s / std::sqrt(kQueryScalar));
          keys.push_back(j);
        }
        const double max = *std::max_element(scores.begin(), scores.end());
        double sum = 0;
        for (double& s : scores) sum += s = std::exp(s - max);
        for (size_t i = 0; i < keys.size(); ++i)
          for (int d = 0; d < kHeadDim; ++d)
            attn[size_t(hh * kHeadDim + d)] += scores[i] / sum * v[size_t(keys[i])][size_t(kv * kHeadDim + d)];
      }
      const Tensor o = rms_norm64(linear64(W(p + "self_attn.o_proj.weight"), attn, kHidden), W(p + "post_attention_layernorm.weight"));
      for (int i = 0; i < kHidden; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
      const Tensor h = rms_norm64(x[size_t(t)], W(p + "pre_feedforward_layernorm.weight"));
      Tensor gate = linear64(W(p + "mlp.gate_proj.weight"), h, kInter);
      const Tensor up = linear64(W(p + "mlp.up_proj.weight"), h, kInter);
      for (int i = 0; i < kInter; ++i) {
        const double g = gate[size_t(i)];
        gate[size_t(i)] = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g))) * up[size_t(i)];
      }
      const Tensor down = rms_norm64(linear64(W(p + "mlp.down_proj.weight"), gate, kHidden), W(p + "post_feedforward_layernorm.weight"));
      for (int i = 0; i < kHidden; ++i) x[size_t(t)][size_t(i)] += down[size_t(i)];
    }
  }
  std::vector<Tensor> logits;
  for (int t = 0; t < n; ++t) logits.push_back(linear64(W("embed_tokens.weight"), rms_norm64(x[size_t(t)], W("norm.weight")), kVocab));
  return logits;
}

class Gemma3Reference : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(MEDLAB_BINARY_DIR) / "test-tmp" / "gemma3_micro";
    std::filesystem::remove_all(dir_);
    model_ = write_micro_model(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  MicroModel model_;
};

TEST_F(Gemma3Reference, PrefillAndDecodeMatchFloat64) {
  const std::vector<int32_t> tokens{2, 17, 5, 33, 8, 8, 21, 39, 0, 12, 4};  // 11 positions, window 3
  const std::vector<Tensor> expect = reference_logits(model_, tokens);
  const Checkpoint checkpoint = Checkpoint::open(dir_.string());
  const Gemma3 model(checkpoint, kVocab, 8);
  for (const KernelTable* kernels : available_kernels()) {
    ThreadPool pool(2);
    Gemma3State state(model, 16);
    Gemma3Workspace ws(model, pool, *kernels);
    std::vector<float> logits(kVocab);
    // The first 6 tokens as one prompt, then one token at a time.
    model.forward(state, ws, std::span(tokens).first(6), logits.data());
    for (size_t t = 5; t < tokens.size(); ++t) {
      if (t > 5) model.forward(state, ws, std::span(tokens).subspan(t, 1), logits.data());
      for (int i = 0; i < kVocab; ++i)
        EXPECT_NEAR(logits[size_t(i)], expect[t][size_t(i)], 2e-5 * (1 + std::abs(expect[t][size_t(i)])))
            << isa_name(kernels->isa) << " position " << t << " token " << i;
    }
  }
}

// Image soft tokens: a run longer than the sliding window, placed across the boundary of the first
// prefill chunk so that the chunk must grow to keep the image whole.
TEST_F(Gemma3Reference, ImageTokensAttendBothWaysAndStayInOneChunk) {
  std::mt19937 rng(21);
  std::uniform_int_distribution<int32_t> token(3, kVocab - 1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int n = Gemma3::kPrefillChunk + 12;
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (auto& t : tokens) t = token(rng);
  ReferenceImage image;
  image.begin = Gemma3::kPrefillChunk - 2;
  image.length = 5;  // > kWindow
  for (int i = 0; i < image.length * kHidden; ++i) image.embeddings.push_back(normal(rng));
  const std::vector<Tensor> expect = reference_logits(model_, tokens, image);

  const Checkpoint checkpoint = Checkpoint::open(dir_.string());
  const Gemma3 model(checkpoint, kVocab, 8);
  const ImageEmbeddings images[] = {{image.begin, image.length, image.embeddings.data()}};
  for (const KernelTable* kernels : available_kernels()) {
    ThreadPool pool(2);
    Gemma3State state(model, n + 4);
    Gemma3Workspace ws(model, pool, *kernels);
    std::vector<float> logits(kVocab);
    model.forward(state, ws, std::span(tokens).first(size_t(n - 2)), logits.data(), images);
    for (int i = 0; i < kVocab; ++i) EXPECT_NEAR(logits[size_t(i)], expect[size_t(n - 3)][size_t(i)], 2e-5 * (1 + std::abs(expect[size_t(n - 3)][size_t(i)])));
    model.forward(state, ws, std::span(tokens).subspan(size_t(n - 2)), logits.data());
    for (int i = 0; i < kVocab; ++i)
      EXPECT_NEAR(logits[size_t(i)], expect[size_t(n - 1)][size_t(i)], 2e-5 * (1 + std::abs(expect[size_t(n - 1)][size_t(i)])))
          << isa_name(kernels->isa) << " token " << i;
  }
}

// Prefill and decode do the same arithmetic per token, so a prompt gives the same logits to the bit fed
// whole, in two pieces, or a token at a time, on 1, 2 or 3 threads. The tiny preset's head_dim of 16 takes
// the vector attention path; 40 tokens pass its 16-token sliding window.
TEST(Gemma3Bits, PrefillPiecesAndDecodeGiveTheSameLogits) {
  const std::filesystem::path dir = std::filesystem::path(MEDLAB_BINARY_DIR) / "test-tmp" / "gemma3_tiny_bits";
  write_test_checkpoint({"tiny", 3, DType::BF16, ""}, dir.string());
  const Checkpoint checkpoint = Checkpoint::open(dir.string());
  const int64_t vocab = checkpoint.config().text.vocab_size;
  const Gemma3 model(checkpoint, vocab, 16);
  std::mt19937 rng(4);
  std::vector<int32_t> tokens(40);
  for (int32_t& t : tokens) t = std::uniform_int_distribution<int32_t>(3, 5000)(rng);
  for (const KernelTable* kernels : available_kernels()) {
    ThreadPool one(1), two(2), three(3);
    std::vector<float> whole(static_cast<size_t>(vocab)), pieces(whole.size()), stepwise(whole.size());
    Gemma3State a(model, 64), b(model, 64), c(model, 64);
    Gemma3Workspace on_two(model, two, *kernels), on_three(model, three, *kernels), on_one(model, one, *kernels);
    model.forward(a, on_two, tokens, whole.data());
    model.forward(b, on_three, std::span(tokens).first(17), pieces.data());
    model.forward(b, on_three, std::span(tokens).subspan(17), pieces.data());
    for (size_t t = 0; t < tokens.size(); ++t) model.forward(c, on_one, std::span(tokens).subspan(t, 1), stepwise.data());
    EXPECT_EQ(std::memcmp(whole.data(), pieces.data(), whole.size() * 4), 0) << isa_name(kernels->isa);
    EXPECT_EQ(std::memcmp(whole.data(), stepwise.data(), whole.size() * 4), 0) << isa_name(kernels->isa);
  }
  std::filesystem::remove_all(dir);
}

TEST_F(Gemma3Reference, ContextOverflowIsAnError) {
  const Checkpoint checkpoint = Checkpoint::open(dir_.string());
  const Gemma3 model(checkpoint, kVocab, 8);
  ThreadPool pool(1);
  Gemma3State state(model, 4);
  Gemma3Workspace ws(model, pool, scalar_kernels());
  std::vector<float> logits(kVocab);
  const std::vector<int32_t> tokens{1, 2, 3, 4, 5};
  EXPECT_THROW(model.forward(state, ws, tokens, logits.data()), Error);
}

// Continuous batching: a decode step of several sequences in one pass gives each sequence the bits it gets
// alone, whatever else shares the batch (2 rows take the decode kernels, 5 the prefill ones), for plain and
// quantized weights in both precisions and every kernel set.
TEST(Gemma3Bits, BatchedDecodeGivesEachSequenceItsOwnLogits) {
  const std::filesystem::path dir = std::filesystem::path(MEDLAB_BINARY_DIR) / "test-tmp" / "gemma3_tiny_batch";
  write_test_checkpoint({"tiny", 5, DType::BF16, ""}, dir.string());
  std::mt19937 rng(9);
  std::vector<std::vector<int32_t>> prompts;
  for (int length : {5, 9, 20, 3, 33}) {
    prompts.emplace_back(static_cast<size_t>(length));
    for (int32_t& t : prompts.back()) t = std::uniform_int_distribution<int32_t>(3, 5000)(rng);
  }
  constexpr int kSteps = 4;
  for (const std::optional<DType> quant : {std::optional<DType>{}, std::optional(DType::Q8_0), std::optional(DType::Q4_0),
                                           std::optional(DType::Q4_K)}) {
    Checkpoint checkpoint = Checkpoint::open(dir.string());
    if (quant) quantize_weights(checkpoint, *quant, 2);
    const int64_t vocab = checkpoint.config().text.vocab_size;
    const Gemma3 model(checkpoint, vocab, 16);
    const std::string what(quant ? dtype_name(*quant) : "bf16");
    for (const KernelTable* kernels : available_kernels())
      for (const Precision precision : {Precision::Exact, Precision::Fast}) {
        ThreadPool pool(2);
        Gemma3Workspace ws(model, pool, *kernels, precision);
        // Alone: each prompt, then kSteps tokens fed one at a time (token i + 100 at step i).
        std::vector<std::vector<float>> alone;
        for (const auto& prompt : prompts) {
          Gemma3State state(model, 64);
          std::vector<float> logits(static_cast<size_t>(vocab));
          model.forward(state, ws, prompt, logits.data());
          for (int step = 0; step < kSteps; ++step) {
            const int32_t token = 100 + step;
            model.forward(state, ws, std::span(&token, 1), logits.data());
          }
          alone.push_back(logits);
        }
        // Batched: the first two sequences, then all five (in reverse order), share each step.
        for (const size_t batch : {size_t(2), size_t(5)}) {
          std::vector<Gemma3State> states;
          for (size_t i = 0; i < batch; ++i) states.emplace_back(model, 64);
          std::vector<float> logits(static_cast<size_t>(vocab) * batch);
          for (size_t i = 0; i < batch; ++i) model.forward(states[i], ws, prompts[i], logits.data());
          std::vector<Gemma3State*> order;
          for (size_t i = batch; i-- > 0;) order.push_back(&states[i]);
          for (int step = 0; step < kSteps; ++step) {
            const std::vector<int32_t> tokens(batch, 100 + step);
            model.decode(order, ws, tokens, logits.data());
          }
          for (size_t row = 0; row < batch; ++row) {
            const size_t sequence = batch - 1 - row;
            EXPECT_EQ(std::memcmp(logits.data() + row * size_t(vocab), alone[sequence].data(), size_t(vocab) * 4), 0)
                << what << " " << isa_name(kernels->isa) << (precision == Precision::Fast ? " fast" : " exact")
                << " batch of " << batch << ", sequence " << sequence;
          }
        }
      }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace medlab
