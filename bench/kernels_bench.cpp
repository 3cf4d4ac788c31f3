// Matrix multiply throughput per kernel set, on MedGemma 4B shapes (bf16 weights, f32 activations).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace medlab {
namespace {

void BM_Matmul(benchmark::State& state, const KernelTable* kernels) {
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
    matmul(*kernels, pool, x.data(), m, weights, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(2 * m * rows * cols) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.counters["GB/s(weights)"] =
      benchmark::Counter(double(rows * cols * 2) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void register_all() {
  for (const KernelTable* k : available_kernels()) {
    if (k->isa == Isa::Scalar) continue;  // far too slow at these sizes
    for (int threads : {1, 2}) {
      // decode (m=1) on the q projection and the MLP up projection; prefill (m=64) on the same.
      for (auto [m, rows, cols] : {std::tuple{1, 2048, 2560}, {1, 10240, 2560}, {64, 2048, 2560}, {64, 10240, 2560}}) {
        benchmark::RegisterBenchmark(("matmul_bf16/" + std::string(isa_name(k->isa))).c_str(), BM_Matmul, k)
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

int main(int argc, char** argv) {
  medlab::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
