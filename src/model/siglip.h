// The image side of MedGemma: the SigLIP vision tower and Gemma 3's multimodal projector, which turn one
// normalized image into the "soft tokens" that stand in for the <image_soft_token> placeholders in the
// decoder's input. f32 arithmetic over weights used in place in their stored dtype. The model is immutable
// once built; each encode allocates its own scratch (about 200 MB at MedGemma's size), since images are
// encoded rarely and a long-lived buffer that size would sit idle between them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "formats/checkpoint.h"
#include "kernels/kernels.h"
#include "model/linear.h"

namespace medlab {

class SiglipVision {
  struct Scratch;  // one encode's buffers

 public:
  // Views the checkpoint's vision and projector tensors and the LoRA updates attached to them (the
  // checkpoint must outlive the model). Fails
  // naming the tensor if one is missing or misshapen, and if the checkpoint has no vision tower.
  explicit SiglipVision(const Checkpoint& checkpoint);

  const VisionConfig& config() const { return config_; }
  int64_t image_size() const { return config_.image_size; }  // pixels per side of the input
  int64_t num_patches() const { return patches_per_side_ * patches_per_side_; }
  int64_t tokens_per_image() const { return tokens_per_side_ * tokens_per_side_; }
  int64_t output_dim() const { return output_dim_; }  // the decoder's hidden size

  // pixels: [num_channels][image_size][image_size], normalized as the image processor does (channel-major,
  // as normalize_chw writes). Writes tokens_per_image() x output_dim() floats to `out`: the soft tokens in
  // row-major order of the pooled grid, unscaled (the decoder must not multiply them by sqrt(hidden)).
  // precision: how weights meet the activations (kernels.h).
  void encode(const float* pixels, float* out, ThreadPool& pool, const KernelTable& kernels,
              Precision precision = Precision::Exact) const;

  // The same encode a step at a time (the patch embedding, each encoder layer, then the projector), so that
  // a server can run other work between steps. `pixels` and `out` must outlive it; it owns its scratch.
  class Encoding {
   public:
    Encoding(const SiglipVision& vision, const float* pixels, float* out, Precision precision = Precision::Exact);
    ~Encoding();
    bool done() const { return next_step_ > steps(); }
    void step(ThreadPool& pool, const KernelTable& kernels);  // the next step; `out` is written by the last

   private:
    int64_t steps() const { return int64_t(vision_.layers_.size()) + 1; }
    const SiglipVision& vision_;
    const float* pixels_;
    float* out_;
    std::unique_ptr<Scratch> scratch_;
    int64_t next_step_ = 0;  // 0: embedding; 1..layers: that layer; layers + 1: projector
  };

  // Each head's queries go to fused attention in up to kCallsPerHead calls of attention_rows(patches) rows:
  // calls as large as that allows, since each rearranges the head's keys and values once for all its rows
  // (the fast kernel on AMX, per row: 256 rows a call 4 % slower than 512, 1024 12 % faster, 2048 slower
  // again, its outputs no longer in L2), and heads x 4 units of work still share out evenly between threads.
  static constexpr int64_t kCallsPerHead = 4;
  static int64_t attention_rows(int64_t patches) {
    return (patches + kCallsPerHead * 16 - 1) / (kCallsPerHead * 16) * 16;
  }

 private:
  struct Layer {
    std::vector<float> norm1_weight, norm1_bias, norm2_weight, norm2_bias;
    Linear q, k, v, out, fc1, fc2;
    std::vector<float> q_bias, k_bias, v_bias, out_bias, fc1_bias, fc2_bias;
  };

  void embed_patches(const float* pixels, Scratch& s, ThreadPool& pool, const KernelTable& kernels) const;
  void attention(const Layer& layer, Scratch& s, ThreadPool& pool, const KernelTable& kernels) const;
  void mlp(const Layer& layer, Scratch& s, ThreadPool& pool, const KernelTable& kernels) const;
  void project(Scratch& s, float* out, ThreadPool& pool, const KernelTable& kernels) const;

  VisionConfig config_;
  int64_t low_rank_floats_ = 0;  // scratch the layers' LoRA updates need
  int64_t patches_per_side_ = 0, tokens_per_side_ = 0, output_dim_ = 0, head_dim_ = 0;
  WeightMatrix patch_embedding_;  // the conv kernel [hidden, channels, p, p] seen as [hidden, channels*p*p]
  std::vector<float> patch_bias_;
  TensorView position_embedding_;  // [num_patches, hidden]
  std::vector<Layer> layers_;
  std::vector<float> post_norm_weight_, post_norm_bias_;
  std::vector<float> soft_norm_scale_;  // 1 + mm_soft_emb_norm.weight
  // mm_input_projection_weight is [vision_hidden, text_hidden] and used as x @ W; matmul computes x @ W^T,
  // so this holds W transposed, [text_hidden, vision_hidden], in the stored dtype (an exact copy, 6 MB).
  std::vector<uint8_t> projection_t_;
  DType projection_dtype_ = DType::F32;
};

}  // namespace medlab
