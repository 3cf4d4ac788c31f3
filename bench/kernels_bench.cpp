// Matrix multiply throughput per kernel set, on MedGemma 4B shapes (bf16 or block-quantized weights, f32
// activations).
#include <benchmark/benchmark.h>
#include <emmintrin.h>

#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "core/quant.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "kernels/x16_panels.h"

namespace medlab {
namespace {

void BM_Matmul(benchmark::State& state, const KernelTable* kernels, Precision precision) {
  const int64_t m = state.range(0), rows = state.range(1), cols = state.range(2);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<uint16_t> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = f32_to_bf16(normal(rng));
  std::vector<float> x(static_cast<size_t>(m * cols)), y(static_cast<size_t>(m * rows));
  for (auto& v : x) v = normal(rng);
  ThreadPool pool(int(state.range(3)));
  const WeightMatrix weights{DType::BF16, rows, cols, w.data()};
  for (auto _ : state) {
    matmul(*kernels, pool, x.data(), m, weights, y.data(), precision);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(2 * m * rows * cols) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.counters["GB/s(weights)"] =
      benchmark::Counter(double(rows * cols * 2) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// Fused attention of `rows` query rows against `keys` keys of one KV head, single-threaded; FLOP/s count the
// two products (q.k and p.v), 4 * head_dim per row and key. A head's keys and values lie in rows of their
// own, as the models store them.
void BM_Attention(benchmark::State& state, const KernelTable* kernels, Precision precision) {
  const int64_t rows = state.range(0), keys = state.range(1), hd = state.range(2);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> q(static_cast<size_t>(rows * hd)), k(static_cast<size_t>(keys * hd)), v(k.size()),
      out(q.size());
  for (auto* values : {&q, &k, &v})
    for (auto& x : *values) x = normal(rng);
  std::vector<const float*> qs;
  std::vector<float*> outs;
  for (int64_t r = 0; r < rows; ++r) {
    qs.push_back(q.data() + r * hd);
    outs.push_back(out.data() + r * hd);
  }
  const std::vector<int64_t> first(static_cast<size_t>(rows), 0), last(static_cast<size_t>(rows), keys - 1);
  for (auto _ : state) {
    attention(*kernels, {rows, qs.data(), outs.data(), first.data(), last.data()}, {k.data(), v.data(), hd, keys},
              {hd, 0.125f, 0.0f}, precision);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(4 * rows * keys * hd) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void register_all() {
  for (const KernelTable* k : available_kernels()) {
    // SigLIP at 896 px (a block of 512 queries, 4096 patches, head_dim 72) and a decode step of MedGemma 4B
    // (2 query heads per KV head, head_dim 256, 4096 positions).
    // Fast precision differs from exact only on the AVX-512 and AMX sets of a CPU with AVX512-BF16.
    for (Precision precision : {Precision::Exact, Precision::Fast}) {
      if (precision == Precision::Fast && !(k->isa >= Isa::Avx512 && attention_avx512_bf16())) continue;
      const std::string name = std::string("attention/") + isa_name(k->isa) + (precision == Precision::Fast ? "_fast" : "");
      for (auto [rows, keys, hd] : {std::tuple{512, 4096, 72}, {2, 4096, 256}})
        benchmark::RegisterBenchmark(name.c_str(), BM_Attention, k, precision)
            ->Args({rows, keys, hd})
            ->ArgNames({"rows", "keys", "head_dim"})
            ->Unit(benchmark::kMillisecond);
    }
    if (k->isa == Isa::Scalar) continue;  // far too slow at these sizes
    for (int threads : {1, 2}) {
      // decode (m=1), a batched decode step of 4 or 8 requests (medlab serve), prefill chunks (64, 256) and a
      // whole 896px image in the vision tower (4096), on the decoder's attention and MLP up projections and
      // SigLIP's MLP up and down projections.
      for (Precision precision : {Precision::Exact, Precision::Fast})
        for (int64_t m : {1, 4, 8, 64, 256, 4096})
          for (auto [rows, cols] : {std::pair{2560, 2560}, {10240, 2560}, {4304, 1152}, {1152, 4304}}) {
            const std::string name = std::string(precision == Precision::Fast ? "matmul_bf16_fast/" : "matmul_bf16/") +
                                     isa_name(k->isa);
            benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, k, precision)
                ->Args({m, rows, cols, threads})
                ->ArgNames({"m", "n", "k", "threads"})
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
          }
    }
  }
}

}  // namespace
}  // namespace medlab

// Quantized weights, both precisions, on MedGemma 4B's MLP shapes: GB/s of weights read tells decode (m=1)
// against the memory read rate below; GOP/s tells prefill against the bf16 matmul above.
namespace medlab {
namespace {

// A [rows, cols] matrix of `type` (block-quantized, or bf16): 64 random rows, repeated (quantizing 26M values
// takes seconds); the panel types pack their row type's matrix.
const std::vector<uint8_t>& quantized_weights(DType type, int64_t rows, int64_t cols) {
  static std::map<std::tuple<DType, int64_t, int64_t>, std::vector<uint8_t>> cache;
  auto& bytes = cache[{type, rows, cols}];
  if (bytes.empty() && is_x16_panels(type)) {
    const std::vector<uint8_t>& unpacked = quantized_weights(x16_row_type(type), rows, cols);
    bytes.resize(x16_bytes(type, rows, cols));
    pack_x16(type, unpacked.data(), rows, cols, 0, (rows + kX16Rows - 1) / kX16Rows, bytes.data());
  }
  if (bytes.empty()) {
    const int64_t distinct = 64;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> source(static_cast<size_t>(distinct * cols));
    for (auto& v : source) v = normal(rng);
    const size_t row = row_bytes(type, cols);
    bytes.resize(row * size_t(rows));
    quantize_row(type, source.data(), bytes.data(), distinct * cols);
    for (int64_t r = distinct; r < rows; ++r) std::memcpy(bytes.data() + size_t(r) * row, bytes.data() + size_t(r % distinct) * row, row);
  }
  return bytes;
}

void BM_QuantMatmul(benchmark::State& state, const KernelTable* kernels, DType type, Precision precision) {
  const int64_t m = state.range(0), rows = state.range(1), cols = state.range(2);
  const std::vector<uint8_t>& w = quantized_weights(type, rows, cols);
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(m * cols)), y(static_cast<size_t>(m * rows));
  for (auto& v : x) v = normal(rng);
  ThreadPool pool(int(state.range(3)));
  const WeightMatrix weights{type, rows, cols, w.data()};
  for (auto _ : state) {
    matmul(*kernels, pool, x.data(), m, weights, y.data(), precision);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOP/s"] = benchmark::Counter(double(2 * m * rows * cols) * double(state.iterations()) / 1e9,
                                               benchmark::Counter::kIsRate);
  state.counters["GB/s(weights)"] =
      benchmark::Counter(double(w.size()) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// Decode as a model step meets it: one activation row against 48 different [10240, 2560] matrices (0.9 to
// 2.5 GB, against 32 MiB of L3), so every weight byte comes from memory; compare with memory_read below.
void BM_DecodeStream(benchmark::State& state, const KernelTable* kernels, DType type, Precision precision) {
  constexpr int64_t kRows = 10240, kCols = 2560, kMatrices = 48;
  const std::vector<uint8_t>& one = quantized_weights(type, kRows, kCols);
  std::vector<uint8_t> all(one.size() * kMatrices);
  for (int64_t i = 0; i < kMatrices; ++i) std::memcpy(all.data() + size_t(i) * one.size(), one.data(), one.size());
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  std::vector<float> x(kCols), y(kRows);
  for (auto& v : x) v = normal(rng);
  ThreadPool pool(int(state.range(0)));
  for (auto _ : state) {
    for (int64_t i = 0; i < kMatrices; ++i)
      matmul(*kernels, pool, x.data(), 1, {type, kRows, kCols, all.data() + size_t(i) * one.size()}, y.data(),
             precision);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GB/s(weights)"] =
      benchmark::Counter(double(all.size()) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// The ceiling for decode: summing 512 MiB of memory, a 64-byte line per step (SSE2, every x86-64), split
// over the pool.
void BM_MemoryRead(benchmark::State& state) {
  std::vector<int64_t> data(size_t(64) << 20, 1);
  ThreadPool pool(int(state.range(0)));
  std::vector<int64_t> sums(16);
  for (auto _ : state) {
    pool.parallel_for(int64_t(data.size()), [&](int64_t begin, int64_t end) {
      auto line = [&](int64_t i) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(data.data() + i)); };
      __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t i = begin; i + 8 <= end; i += 8) {
        s0 = _mm_add_epi64(s0, line(i));
        s1 = _mm_add_epi64(s1, line(i + 2));
        s2 = _mm_add_epi64(s2, line(i + 4));
        s3 = _mm_add_epi64(s3, line(i + 6));
      }
      const __m128i s = _mm_add_epi64(_mm_add_epi64(s0, s1), _mm_add_epi64(s2, s3));
      sums[size_t(begin * 16 / int64_t(data.size()))] =
          _mm_cvtsi128_si64(s) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
    }, 64);
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(double(data.size() * 8) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void register_quantized() {
  benchmark::RegisterBenchmark("memory_read", BM_MemoryRead)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();
  for (const KernelTable* k : available_kernels()) {
    if (k->isa == Isa::Scalar) continue;
    for (auto [type, precision] : {std::pair{DType::BF16, Precision::Exact}, {DType::BF16, Precision::Fast},
                                   {DType::Q8_0, Precision::Fast}, {DType::Q4_0, Precision::Fast},
                                   {DType::Q4_0x16, Precision::Fast}, {DType::Q4_K, Precision::Fast},
                                   {DType::Q4_Kx16, Precision::Fast}, {DType::Q6_K, Precision::Fast},
                                   {DType::Q6_Kx16, Precision::Fast}}) {
      const std::string name = "decode_stream_" + std::string(dtype_name(type)) +
                               (precision == Precision::Fast ? "_fast/" : "_exact/") + isa_name(k->isa);
      benchmark::RegisterBenchmark(name.c_str(), BM_DecodeStream, k, type, precision)
          ->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
    }
    for (DType type : {DType::Q4_K, DType::Q4_Kx16, DType::Q5_K, DType::Q6_K, DType::Q6_Kx16, DType::Q8_0, DType::Q4_0,
                       DType::Q4_0x16, DType::NF4}) {
      for (Precision precision : {Precision::Fast, Precision::Exact}) {
        const std::string name = "matmul_" + std::string(dtype_name(type)) + "_" +
                                 (precision == Precision::Fast ? "fast/" : "exact/") + isa_name(k->isa);
        for (int threads : {1, 2}) {
          // MLP up/gate (10240 x 2560) and down (2560 x 10240) projections; decode and prefill chunks.
          for (int64_t m : {1, 64, 256})
            for (auto [rows, cols] : {std::pair{10240, 2560}, {2560, 10240}})
              benchmark::RegisterBenchmark(name.c_str(), BM_QuantMatmul, k, type, precision)
                  ->Args({m, rows, cols, threads})
                  ->ArgNames({"m", "n", "k", "threads"})
                  ->UseRealTime()
                  ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace medlab

int main(int argc, char** argv) {
  medlab::register_all();
  medlab::register_quantized();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
