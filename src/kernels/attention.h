// Fused attention: query rows against the keys and values of one KV head, softmax(q . k * scale) v, with the
// softmax done online (a running maximum and sum per row) over blocks of keys, so no score matrix is stored.
//
// Each row sees one contiguous range of key positions, which expresses every mask the models need: causal,
// sliding window, the both-ways span of an image's tokens, and none at all (SigLIP). Several query rows may
// share a KV head (grouped-query attention). Key blocks start at positions that are multiples of the block
// size and a row walks them in order, so a row's bits depend only on its query, its range and the cache:
// not on the other rows in the call, the thread count, or whether the tokens came one at a time.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace medlab {

// One KV head: position p's key and value are rows p % capacity of k and v, rows row_stride floats apart.
struct KvHead {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t row_stride = 0;
  int64_t capacity = 0;
};

// n query rows of head_dim floats; row i sees key positions first[i]..last[i] (inclusive, first <= last) and
// writes head_dim floats to out[i].
struct AttentionRows {
  int64_t n = 0;
  const float* const* q = nullptr;
  float* const* out = nullptr;
  const int64_t* first = nullptr;
  const int64_t* last = nullptr;
};

// Scores are (q . k) * scale, then softcap * tanh(score / softcap) when softcap > 0.
struct AttentionShape {
  int64_t head_dim = 0;
  float scale = 1;
  float softcap = 0;
};

// With the kernel set's ISA; scratch is per thread and only grows. Exact: f32 throughout (AVX-512 machines
// run the AVX2 version). Fast, on an AVX-512 set where the CPU has AVX512-BF16: queries, keys, values and
// probabilities rounded to bf16, products summed in f32 (elsewhere Fast runs the exact version); the amx
// set's products take AMX tiles, grouped as they group them.
void attention(const KernelTable& kernels, const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape,
               Precision precision = Precision::Exact);

// The versions, for tests: the scalar reference, AVX2 (null when the CPU lacks AVX2, FMA or F16C), and the
// fast bf16 ones (null without AVX512-BF16, or AMX; head_dim a multiple of 8).
using AttentionFn = void (*)(const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape);
void attention_scalar(const AttentionRows& rows, const KvHead& kv, const AttentionShape& shape);
AttentionFn attention_avx2();
AttentionFn attention_avx512_bf16();
AttentionFn attention_amx_bf16();  // null without AVX512-BF16 and AMX (amx_usable)

}  // namespace medlab
