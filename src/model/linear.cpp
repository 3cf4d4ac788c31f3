#include "model/linear.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/x16_panels.h"

namespace medlab {
namespace {

WeightMatrix matrix_view(const TensorView& t, int64_t rows, int64_t cols, const std::string& name) {
  if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols)
    fail("tensor ", name, ": shape ", shape_string(t.shape), ", expected ", shape_string({rows, cols}));
  return {t.dtype, rows, cols, t.data};
}

}  // namespace

Linear linear_layer(const Checkpoint& checkpoint, const std::string& full_name, int64_t rows, int64_t cols,
                    const std::string& updates_of) {
  const auto it = checkpoint.tensors().find(full_name);
  if (it == checkpoint.tensors().end()) fail(checkpoint.dir().string(), ": no tensor '", full_name, "'");
  Linear layer{matrix_view(it->second, rows, cols, full_name), {}};
  for (const LowRankTensors& update : checkpoint.low_rank(updates_of.empty() ? full_name : updates_of)) {
    const int64_t rank = update.down.shape.empty() ? 0 : update.down.shape[0];
    matrix_view(update.up, rows, rank, full_name + " (LoRA B)");  // checks the shape
    std::vector<float> up_t(static_cast<size_t>(rank * rows));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < rank; ++j) up_t[size_t(j * rows + i)] = element_f32(update.up, i * rank + j);
    layer.updates.push_back({matrix_view(update.down, rank, cols, full_name + " (LoRA A)"), std::move(up_t), rows, rows,
                             update.scale});
  }
  return layer;
}

Linear first_rows(Linear layer, int64_t rows) {
  if (rows < 1 || rows > layer.weight.rows) fail("model: ", rows, " output rows of a layer with ", layer.weight.rows);
  layer.weight.rows = rows;  // row-major: the first rows are a prefix of the matrix
  for (LowRankUpdate& u : layer.updates) u.rows = rows;
  return layer;
}

LargeBuffer pack_layers(std::span<Linear* const> layers, const Checkpoint& checkpoint, ThreadPool& pool) {
  struct Packing {
    WeightMatrix& w;
    const MappedFile& file;
    size_t offset;
  };
  std::vector<Packing> packings;
  size_t total = 0;
  for (Linear* layer : layers) {
    WeightMatrix& w = layer->weight;
    if (x16_type(w.dtype) == w.dtype) continue;
    if (const MappedFile* file = checkpoint.mapping_of(w.data, row_bytes(w.dtype, w.cols) * size_t(w.rows))) {
      packings.push_back({w, *file, total});
      total += (x16_bytes(x16_type(w.dtype), w.rows, w.cols) + 63) / 64 * 64;
    }
  }
  LargeBuffer packed(total);
  for (Packing& p : packings) {
    uint8_t* out = packed.data() + p.offset;
    const DType panel_type = x16_type(p.w.dtype);
    pool.parallel_for((p.w.rows + kX16Rows - 1) / kX16Rows, [&](int64_t begin, int64_t end) {
      pack_x16(panel_type, p.w.data, p.w.rows, p.w.cols, begin, end, out);
    });
    p.file.release(p.w.data, row_bytes(p.w.dtype, p.w.cols) * size_t(p.w.rows));
    p.w = {panel_type, p.w.rows, p.w.cols, out};
  }
  return packed;
}

void pack_owned_matrices(Checkpoint& checkpoint, ThreadPool& pool) {
  const std::string embedding = checkpoint.layout().text + "embed_tokens.weight";
  std::vector<std::pair<std::string, TensorView>> owned;
  for (const auto& [name, t] : checkpoint.tensors())
    if (name != embedding && t.shape.size() == 2 && x16_type(t.dtype) != t.dtype &&
        !checkpoint.mapping_of(t.data, t.nbytes()))
      owned.emplace_back(name, t);
  // Named members, not a structured binding: clang 14 cannot capture a binding in the lambda below.
  for (const auto& entry : owned) {
    const std::string& name = entry.first;
    const TensorView& t = entry.second;
    const DType panel_type = x16_type(t.dtype);
    const int64_t rows = t.shape[0], cols = t.shape[1];
    // Panels start on a cache line, as pack_layers' do: the kernels' 64-byte loads then never straddle two.
    std::vector<uint8_t> storage(x16_bytes(panel_type, rows, cols) + 63);
    uint8_t* panels = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
    pool.parallel_for((rows + kX16Rows - 1) / kX16Rows, [&](int64_t begin, int64_t end) {
      pack_x16(panel_type, t.data, rows, cols, begin, end, panels);
    });
    checkpoint.adopt_tensor(name, {panel_type, t.shape, panels}, std::move(storage));
  }
}

int64_t low_rank_scratch_floats(std::span<const Linear* const> layers) {
  int64_t floats = 0;
  for (const Linear* layer : layers)
    for (const LowRankUpdate& u : layer->updates) floats = std::max(floats, kLowRankRows * u.rank());
  return floats;
}

void linear(const KernelTable& k, ThreadPool& pool, const float* x, int64_t m, const Linear& layer, float* y,
            Precision precision, std::span<float> scratch) {
  const WeightMatrix& w = layer.weight;
  matmul(k, pool, x, m, w, y, precision);
  for (const LowRankUpdate& u : layer.updates) {
    const int64_t rank = u.rank();
    if (int64_t(scratch.size()) < kLowRankRows * rank)
      fail("model: low-rank scratch of ", scratch.size(), " floats is too small for a rank-", rank, " update");
    float* down = scratch.data();  // [block][rank]
    for (int64_t begin = 0; begin < m; begin += kLowRankRows) {
      const int64_t rows = std::min(kLowRankRows, m - begin);
      matmul(k, pool, x + begin * w.cols, rows, u.down, down, Precision::Exact);
      // y += scale * (down @ B^T), a column slice per job: sum over the rank into `sum`, then scale and add.
      constexpr int64_t kColumns = 256;
      pool.parallel_for((u.rows + kColumns - 1) / kColumns, [&](int64_t first, int64_t last) {
        float sum[kColumns];
        for (int64_t slice = first; slice < last; ++slice) {
          const int64_t c0 = slice * kColumns, width = std::min(kColumns, u.rows - c0);
          for (int64_t i = 0; i < rows; ++i) {
            std::fill(sum, sum + width, 0.0f);
            for (int64_t j = 0; j < rank; ++j) {
              const float d = down[i * rank + j];
              const float* b = &u.up_t[size_t(j * u.up_stride + c0)];
              for (int64_t c = 0; c < width; ++c) sum[c] += d * b[c];
            }
            float* out = y + (begin + i) * w.rows + c0;
            for (int64_t c = 0; c < width; ++c) out[c] += sum[c] * u.scale;
          }
        }
      });
    }
  }
}

}  // namespace medlab
