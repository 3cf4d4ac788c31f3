// A linear layer as the models use it: a weight matrix in its stored dtype, plus the low-rank updates that
// LoRA adapters apply beside it at run time (formats/peft_adapter.h), so the base weights stay untouched
// and may be quantized.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/checkpoint.h"
#include "kernels/kernels.h"

namespace medlab {

// scale * (x @ down^T) @ up^T, with down LoRA's A [rank, cols] viewed in place and up its B [rows, rank],
// held transposed in f32 ([rank][up_stride], first `rows` used): the product with it is then `rank` passes
// over contiguous rows, where B's own layout would need a 16-long dot product per output.
struct LowRankUpdate {
  WeightMatrix down;
  std::vector<float> up_t;
  int64_t rows = 0, up_stride = 0;
  float scale = 1;
  int64_t rank() const { return down.rows; }
};

struct Linear {
  WeightMatrix weight;
  std::vector<LowRankUpdate> updates;
};

// The checkpoint's tensor `full_name` as a [rows, cols] matrix (throws Error naming it if misshapen), with
// the low-rank updates the checkpoint's runtime adapters attach to it, or to `updates_of` when the layer
// reads another layer's weight (a head tied to the embedding).
Linear linear_layer(const Checkpoint& checkpoint, const std::string& full_name, int64_t rows, int64_t cols,
                    const std::string& updates_of = {});
// The layer's first `rows` outputs only (the head's rows of real tokens).
Linear first_rows(Linear layer, int64_t rows);

// Floats of scratch linear() needs for any layer of `layers`: zero when none has updates.
int64_t low_rank_scratch_floats(std::span<const Linear* const> layers);

// Q4_0 and K-quant (Q4_K, Q5_K, Q6_K) layers mapped from their file become 16-row panels
// (kernels/x16_panels.h), whose decode is bound by memory rather than by unpacking: their panels go into the
// buffer returned, which they view from then on, and the file's pages leave memory (a tied embedding's rows
// come back from the file when looked up). Other layers, and bytes the checkpoint owns (quantized at load:
// pack_owned_matrices packs those), are left as they are, so no weight is held twice. Q4_0 gives the same bits either way, the K-quants those
// of the scalar kernels. Packs over the pool's threads.
LargeBuffer pack_layers(std::span<Linear* const> layers, const Checkpoint& checkpoint, ThreadPool& pool);

// The same for the matrices the checkpoint owns (quantized at load: run --quant q4_0), before a model views
// them: each becomes a tensor of 16-row panels in place of its rows, one matrix at a time, so that only one is
// ever held twice. The token embedding keeps its rows, which lookups (and a tied output head) read.
void pack_owned_matrices(Checkpoint& checkpoint, ThreadPool& pool);

// y[m, rows] = x[m, cols] @ weight^T + each update's term, in that order. The updates run in f32, in
// blocks of kLowRankRows rows of x, so scratch is bounded; each output sums over the rank in order, so it
// depends only on its own input row, never on the threads or the rows beside it.
void linear(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const Linear& layer, float* y,
            Precision precision, std::span<float> scratch);
inline constexpr int64_t kLowRankRows = 64;

}  // namespace medlab
