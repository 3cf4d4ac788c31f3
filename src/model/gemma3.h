// The Gemma 3 decoder (the language model of MedGemma 4B and 27B), in f32 arithmetic over weights
// used in place in their stored dtype. The model is immutable once built and may be shared by many
// sessions; each sequence owns a Gemma3State (its KV cache), each thread running the model a
// Gemma3Workspace (scratch buffers).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "kernels/kernels.h"
#include "model/linear.h"

namespace medlab {

class Gemma3State;
class Gemma3Workspace;

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
  // Views the checkpoint's language-model tensors and the LoRA updates attached to them (the checkpoint must
  // outlive the model). Logits are produced for the first n_vocab rows of the output head (the embedding,
  // unless the checkpoint unties them): the tokenizer's real vocabulary.
  // Images of up to max_image_tokens soft tokens can be given to forward() (mm_tokens_per_image).
  // Q4_0 and K-quant layers mapped from a file are repacked for the kernels (model/linear.h: pack_layers)
  // by `load_threads` threads; those quantized at load come packed already (load_model).
  Gemma3(const Checkpoint& checkpoint, int64_t n_vocab, int64_t max_image_tokens, int load_threads = 1);
  Gemma3(const Gemma3&) = delete;  // the layers view the model's own packed weights
  Gemma3& operator=(const Gemma3&) = delete;

  const TextConfig& config() const { return config_; }
  // The type layer `layer`'s matrices compute in (its MLP up projection's): the stored one, or its 16-row panels.
  DType layer_weight_type(int64_t layer) const { return layers_.at(size_t(layer)).up.weight.dtype; }
  int64_t n_vocab() const { return n_vocab_; }

  // Runs tokens at positions state.n_past() onward, extending the cache, and writes the logits of the
  // last token to `logits` (n_vocab floats). Prompts are processed in chunks (see chunk_end), so a token's
  // results do not depend on how the caller divides the sequence between calls, as long as each call
  // ends where a chunk ends or at the last token.
  void forward(Gemma3State& state, Gemma3Workspace& workspace, std::span<const int32_t> tokens, float* logits,
               std::span<const ImageEmbeddings> images = {}) const;

  // One decode step of several sequences in one pass: tokens[i] goes to *states[i], its logits to
  // logits + i * n_vocab(). Each sequence gets exactly the bits forward() gives it alone.
  void decode(std::span<Gemma3State* const> states, Gemma3Workspace& workspace, std::span<const int32_t> tokens,
              float* logits) const;

  // Where the prompt chunk starting at token `begin` of an n-token prompt ends: kPrefillChunk tokens
  // later, or later still to finish an image that it would otherwise split.
  int64_t chunk_end(int64_t begin, int64_t n, std::span<const ImageEmbeddings> images) const;
  static constexpr int64_t kPrefillChunk = 256;
  int64_t max_chunk() const { return kPrefillChunk + max_image_tokens_; }

 private:
  friend class Gemma3Workspace;  // sizes its scratch from the layers
  struct Layer {
    bool sliding = false;
    std::vector<float> input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm;  // 1 + w
    std::vector<float> q_norm, k_norm;                                                                 // 1 + w
    Linear q, k, v, o, gate, up, down;
  };

  // The rows of one pass: `rows` consecutive rows from first_row on extend `state`'s sequence.
  struct Segment {
    Gemma3State* state;
    int64_t first_row, rows;
  };
  // Runs the rows of every segment through the decoder; images apply to a single segment. The logits of
  // each segment's last row go to logits + i * n_vocab (none when logits is null).
  void forward_rows(Gemma3Workspace& ws, std::span<const Segment> segments, std::span<const int32_t> tokens,
                    std::span<const ImageEmbeddings> images, float* logits) const;
  void attention(Gemma3Workspace& ws, std::span<const Segment> segments, const Layer& layer, int64_t layer_index) const;
  void rope_tables(Gemma3Workspace& ws, int64_t n) const;
  void apply_rope(float* head, const float* cos, const float* sin) const;

  TextConfig config_;
  int64_t n_vocab_;
  WeightMatrix embed_;  // [vocab_size, hidden]
  Linear head_;         // the first n_vocab rows of lm_head, or of the embedding it is tied to
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  LargeBuffer packed_;  // Q4_0 layers' panels, which the layers above view
  std::vector<float> inv_freq_local_, inv_freq_global_;  // rotary frequencies per dimension pair
  float query_scale_;
  float embed_scale_;
  int64_t max_image_tokens_;
};

// One sequence's state: its position and KV cache (sliding-window layers keep only their window plus a
// chunk), sized once at creation from the context length requested.
class Gemma3State {
 public:
  Gemma3State(const Gemma3& model, int64_t n_ctx);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  void reset() { n_past_ = 0; }  // forget the sequence, keep the cache's memory
  size_t kv_bytes() const;

 private:
  friend class Gemma3;
  struct LayerCache {
    int64_t capacity = 0;     // positions held: all of n_ctx, or the window plus the longest chunk
    std::vector<float> k, v;  // [kv_heads][capacity][head_dim]
  };
  int64_t n_ctx_;
  int64_t n_past_ = 0;
  std::vector<LayerCache> cache_;
};

// What a thread needs to run the decoder: the pool, kernels and precision it computes with, and scratch for
// one pass of up to max_chunk() rows (a prompt chunk, or one decode step of that many sequences). One
// workspace serves any number of sequences, one pass at a time.
class Gemma3Workspace {
 public:
  // precision: how weights meet the activations (kernels.h); f32 and f16 weights are exact either way.
  Gemma3Workspace(const Gemma3& model, ThreadPool& pool, const KernelTable& kernels,
                  Precision precision = Precision::Exact);

  int64_t max_rows() const { return max_rows_; }

 private:
  friend class Gemma3;
  void linear(const float* x, int64_t m, const Linear& layer, float* y);
  ThreadPool& pool_;
  const KernelTable& kernels_;
  Precision precision_;
  int64_t max_rows_;
  std::vector<float> x_, normed_, q_, k_, v_, attn_, proj_, gate_, up_;
  std::vector<float> low_rank_;                     // LoRA updates' scratch; empty without runtime adapters
  std::vector<int64_t> position_;                   // per row: its position in its sequence
  std::vector<int64_t> image_first_, image_last_;  // per row: its image's first and last position, or its own
  std::vector<float> rope_cos_, rope_sin_;          // [row][local, global][head_dim / 2]
  struct AttentionUnit {
    int64_t segment, t0, t1;  // rows [t0, t1) of one segment, against one KV head
  };
  std::vector<AttentionUnit> units_;
};

}  // namespace medlab
