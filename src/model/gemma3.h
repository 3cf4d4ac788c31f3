// The Gemma 3 decoder (the language model of MedGemma 4B and 27B), in f32 arithmetic over weights
// used in place in their stored dtype. The model is immutable once built and may be shared by many
// sessions; each session owns a Gemma3State (its KV cache and scratch buffers).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "kernels/kernels.h"

namespace medlab {

class Gemma3State;

// Soft tokens from the vision tower that replace the embeddings of a run of <image_soft_token>s:
// tokens[begin, begin + length) take the rows of `embeddings` ([length][hidden], not rescaled).
// Attention among the tokens of one image is bidirectional, as in transformers' Gemma 3.
struct ImageEmbeddings {
  int64_t begin = 0;
  int64_t length = 0;
  const float* embeddings = nullptr;
};

class Gemma3 {
 public:
  // Views the checkpoint's language-model tensors (the checkpoint must outlive the model). Logits are
  // produced for the first n_vocab rows of the tied embedding: the tokenizer's real vocabulary.
  // Images of up to max_image_tokens soft tokens can be given to forward() (mm_tokens_per_image).
  Gemma3(const Checkpoint& checkpoint, int64_t n_vocab, int64_t max_image_tokens);

  const TextConfig& config() const { return config_; }
  int64_t n_vocab() const { return n_vocab_; }

  // Runs tokens at positions state.n_past() onward, extending the cache, and writes the logits of the
  // last token to `logits` (n_vocab floats). Prompts are processed in chunks of kPrefillChunk tokens,
  // a chunk growing to the end of an image that it would otherwise split.
  void forward(Gemma3State& state, std::span<const int32_t> tokens, float* logits,
               std::span<const ImageEmbeddings> images = {}) const;

  static constexpr int64_t kPrefillChunk = 256;
  int64_t max_chunk() const { return kPrefillChunk + max_image_tokens_; }

 private:
  struct Layer {
    bool sliding = false;
    std::vector<float> input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm;  // 1 + w
    std::vector<float> q_norm, k_norm;                                                                 // 1 + w
    WeightMatrix q, k, v, o, gate, up, down;
  };

  void forward_chunk(Gemma3State& state, std::span<const int32_t> tokens, std::span<const ImageEmbeddings> images,
                     float* logits) const;
  void attention(Gemma3State& state, const Layer& layer, int64_t layer_index, int64_t n) const;
  void rope_tables(Gemma3State& state, int64_t n) const;
  void apply_rope(float* head, const float* cos, const float* sin) const;

  TextConfig config_;
  int64_t n_vocab_;
  WeightMatrix embed_;  // [vocab_size, hidden]; its first n_vocab rows are also the output projection
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  std::vector<float> inv_freq_local_, inv_freq_global_;  // rotary frequencies per dimension pair
  float query_scale_;
  float embed_scale_;
  int64_t max_image_tokens_;
};

// A session's state for one sequence: KV cache (sliding-window layers keep only their window) and
// scratch buffers, all sized once at creation from the context length requested.
class Gemma3State {
 public:
  // precision: how quantized weights meet the activations (kernels.h); plain weights are exact either way.
  Gemma3State(const Gemma3& model, int64_t n_ctx, ThreadPool& pool, const KernelTable& kernels,
              Precision precision = Precision::Exact);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  void reset() { n_past_ = 0; }  // forget the sequence, keep the buffers
  size_t kv_bytes() const;

 private:
  friend class Gemma3;
  struct LayerCache {
    int64_t capacity = 0;  // positions held: all of n_ctx, or the window plus the longest chunk
    std::vector<float> k, v;  // [kv_heads][capacity][head_dim]
  };

  ThreadPool& pool_;
  const KernelTable& kernels_;
  Precision precision_;
  int64_t n_ctx_;
  int64_t n_past_ = 0;
  std::vector<LayerCache> cache_;
  // Scratch for one chunk of up to max_chunk() tokens.
  std::vector<float> x_, normed_, q_, k_, v_, attn_, proj_, gate_, up_;
  std::vector<int64_t> image_first_, image_last_;  // per chunk token: its image's first and last position, or its own
  std::vector<float> rope_cos_, rope_sin_;          // [chunk token][local, global][head_dim / 2]
};

}  // namespace medlab
