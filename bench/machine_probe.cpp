// machine_probe: what this machine can do at best, and the speed floors that sets for a model with MedGemma
// 4B's dimensions. Memory read bandwidth (1 and 2 threads) bounds decoding, which reads every weight once
// per token; the f32, bf16 and int8 multiply-add peaks bound prompt processing, which is compute-bound.
//
//   build-*/bench/machine_probe [--json]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// MedGemma 4B's decoder: 34 layers of hidden 2560, 8 query and 4 KV heads of 256, MLP 10240, and the
// tied 262208 x 2560 embedding, which is also the output projection and so is read for every token.
constexpr double kLayers = 34, kHidden = 2560, kQDim = 8 * 256, kKvDim = 4 * 256, kMlp = 10240, kVocab = 262208;
constexpr double kLayerWeights = kHidden * (kQDim + 2 * kKvDim) + kQDim * kHidden + 3 * kHidden * kMlp;
constexpr double kDecodeWeights = kLayers * kLayerWeights + kVocab * kHidden;  // read per decoded token
constexpr double kPromptFlops = 2 * kLayers * kLayerWeights;  // per prompt token; the output projection runs once

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs work(thread_index) on n threads at once and returns the wall time of the slowest.
template <class Work>
double timed_on_threads(int n, Work work) {
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < n; ++t) threads.emplace_back(work, t);
  for (std::thread& t : threads) t.join();
  return seconds_since(start);
}

// Sums 32-bit integers with four independent AVX2 accumulators: loads, not arithmetic, are the limit.
__attribute__((target("avx2"))) uint32_t read_sum(const uint32_t* data, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a0 = _mm256_add_epi32(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i)));
    a1 = _mm256_add_epi32(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i + 8)));
    a2 = _mm256_add_epi32(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i + 16)));
    a3 = _mm256_add_epi32(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(data + i + 24)));
  }
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
  uint32_t lanes[8];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), s);
  uint32_t sum = 0;
  for (uint32_t v : lanes) sum += v;
  return sum;
}

// Best of several passes over a buffer far larger than the caches, split evenly between the threads.
double read_bandwidth(const std::vector<uint32_t*>& halves, size_t words_per_thread, int threads, int passes) {
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double s = timed_on_threads(threads, [&](int t) {
      volatile uint32_t sink = read_sum(halves[size_t(t)], words_per_thread);  // volatile: the sum must be computed
      (void)sink;
    });
    best = std::max(best, double(threads) * double(words_per_thread) * 4 / s);
  }
  return best;
}

// Twelve independent FMA chains: enough to cover FMA latency on both FMA ports of current x86 cores.
__attribute__((target("avx2,fma"))) float fma_loop(int64_t iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 12  // the accumulators must live in registers
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  return lanes[0];
}

// The int8 dot product of AVX2 (what q8_0 and q4_0 blocks use): u8 x s8 pairs summed to s16 (maddubs),
// widened to s32 (madd with ones), accumulated; 32 multiply-adds per instruction triple. Each chain feeds
// its sum back as the next u8 operand, so no product can be hoisted; ten chains cover the latency.
__attribute__((target("avx2"))) int32_t int8_loop(int64_t iterations) {
  __m256i acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_epi32(i);
  const __m256i s = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(acc[i], s), ones));
  __m256i sum = acc[0];
  for (int i = 1; i < 10; ++i) sum = _mm256_add_epi32(sum, acc[i]);
  return _mm256_extract_epi32(sum, 0);
}

// The same three with AVX-512 where the CPU has it: f32 FMA on 16 lanes, AVX512_BF16's dot product of bf16
// pairs into f32 (what bf16 weights take in fast precision) and AVX512_VNNI's u8 x s8 quads into s32 (what
// every block type takes), 32 and 64 multiply-adds per instruction.
__attribute__((target("avx512f"))) float fma512_loop(int64_t iterations) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  return lanes[0];
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_dot_loop(int64_t iterations) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(-1e-3f), _mm512_set1_ps(1e-3f));
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  return lanes[0];
}

__attribute__((target("avx512f,avx512vnni"))) int32_t vnni_loop(int64_t iterations) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < iterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], u, s);
  __m512i sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_epi32(sum, acc[i]);
  int32_t lanes[16];
  _mm512_storeu_si512(lanes, sum);
  return lanes[0];
}

// Best of three runs, in operations per second over all threads (a multiply-add counts as two).
template <class Loop>
double peak(Loop loop, double ops_per_iteration, int threads) {
  constexpr int64_t kIterations = 20'000'000;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const double s = timed_on_threads(threads, [&](int) {
      volatile auto sink = loop(kIterations);  // volatile: the loop must run
      (void)sink;
    });
    best = std::max(best, double(threads) * ops_per_iteration * double(kIterations) / s);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr, "machine_probe: this CPU lacks AVX2 or FMA\n");
    return 1;
  }
  // 1 GiB, far beyond any cache, as two halves so each thread streams its own pages.
  constexpr size_t kWordsPerHalf = size_t(512) << 20 >> 2;
  std::vector<uint32_t*> halves;
  for (int h = 0; h < 2; ++h) {
    auto* half = static_cast<uint32_t*>(std::aligned_alloc(64, kWordsPerHalf * 4));
    for (size_t i = 0; i < kWordsPerHalf; ++i) half[i] = uint32_t(i);
    halves.push_back(half);
  }
  const double bw1 = read_bandwidth(halves, kWordsPerHalf, 1, 6);
  const double bw2 = read_bandwidth(halves, kWordsPerHalf, 2, 6);
  for (uint32_t* half : halves) std::free(half);
  const double fma1 = peak(fma_loop, 12 * 8 * 2, 1), fma2 = peak(fma_loop, 12 * 8 * 2, 2);
  const double int8_1 = peak(int8_loop, 10 * 32 * 2, 1), int8_2 = peak(int8_loop, 10 * 32 * 2, 2);
  // 0 where the CPU lacks the instructions; 2 threads only (the peaks that set the floors).
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const double fma512 = avx512 ? peak(fma512_loop, 12 * 16 * 2, 2) : 0;
  const double bf16_dot = avx512 && __builtin_cpu_supports("avx512bf16") ? peak(bf16_dot_loop, 12 * 32 * 2, 2) : 0;
  const double vnni = avx512 && __builtin_cpu_supports("avx512vnni") ? peak(vnni_loop, 12 * 64 * 2, 2) : 0;
  const double bf16_peak = std::max({fma1, fma2, fma512, bf16_dot}), int8_peak = std::max({int8_1, int8_2, vnni});

  const double bw = std::max(bw1, bw2);
  struct Type {
    const char* name;
    double bytes_per_weight;
    double compute_peak;  // the arithmetic its prompt processing runs on
  };
  const Type types[] = {{"bf16", 2.0, bf16_peak},  // f32 FMA or bf16 dot products, whichever is faster
                        {"q8_0", 34.0 / 32, int8_peak},
                        {"q4_0", 18.0 / 32, int8_peak}};
  if (json) {
    std::printf("{\"read_gbps\":{\"1\":%.2f,\"2\":%.2f},\"f32_fma_gflops\":{\"1\":%.1f,\"2\":%.1f},"
                "\"int8_gops\":{\"1\":%.1f,\"2\":%.1f},\"avx512_fma_gflops\":%.1f,\"bf16_dot_gflops\":%.1f,"
                "\"vnni_gops\":%.1f,\"bf16_peak_gflops\":%.1f,\"int8_peak_gops\":%.1f,"
                "\"decode_weights\":%.0f,\"prompt_flops_per_token\":%.0f,\"floors\":{",
                bw1 / 1e9, bw2 / 1e9, fma1 / 1e9, fma2 / 1e9, int8_1 / 1e9, int8_2 / 1e9, fma512 / 1e9, bf16_dot / 1e9,
                vnni / 1e9, bf16_peak / 1e9, int8_peak / 1e9, kDecodeWeights, kPromptFlops);
    for (size_t i = 0; i < std::size(types); ++i)
      std::printf("%s\"%s\":{\"weight_bytes\":%.0f,\"decode_tokens_per_s\":%.2f,\"prompt_tokens_per_s\":%.1f}", i ? "," : "",
                  types[i].name, kDecodeWeights * types[i].bytes_per_weight, bw / (kDecodeWeights * types[i].bytes_per_weight),
                  types[i].compute_peak / kPromptFlops);
    std::printf("}}\n");
    return 0;
  }
  std::printf("memory read bandwidth, 1 GiB buffer: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n", bw1 / 1e9, bw2 / 1e9);
  std::printf("f32 FMA peak (AVX2):                 %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads)\n", fma1 / 1e9, fma2 / 1e9);
  std::printf("int8 multiply-add peak (maddubs):    %.1f GOP/s (1 thread), %.1f GOP/s (2 threads)\n", int8_1 / 1e9, int8_2 / 1e9);
  std::printf("AVX-512, 2 threads (0: not on this CPU): f32 FMA %.1f GFLOP/s, bf16 dot %.1f GFLOP/s, VNNI %.1f GOP/s\n",
              fma512 / 1e9, bf16_dot / 1e9, vnni / 1e9);
  std::printf("\nfloors for MedGemma 4B's decoder (%.3f G weights read per decoded token, %.2f GFLOP per prompt token):\n",
              kDecodeWeights / 1e9, kPromptFlops / 1e9);
  std::printf("%-6s %14s %22s %26s\n", "type", "weights (GB)", "decode max (tok/s)", "prompt max (tok/s)");
  for (const Type& t : types)
    std::printf("%-6s %14.2f %22.2f %26.1f\n", t.name, kDecodeWeights * t.bytes_per_weight / 1e9,
                bw / (kDecodeWeights * t.bytes_per_weight), t.compute_peak / kPromptFlops);
  std::printf("(bf16 prompt processing at the better of the f32 FMA and bf16 dot peaks, q8_0 and q4_0 at the better int8\n"
              " peak; bandwidth: the better of 1 and 2 threads)\n");
  return 0;
}
