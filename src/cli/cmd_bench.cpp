// medlab bench: how fast a model runs here. Prompt processing and decoding speed, image encoding, time to
// the first answer token of an image question, load time, peak memory; a table, or JSON for scripts.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/command_support.h"
#include "core/error.h"
#include "imaging/synthetic_image.h"
#include "runtime/images.h"
#include "runtime/session.h"

namespace medlab::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::string mmproj;
  std::string image;  // a file, "synthetic", or empty: no image figures
  std::string quant;
  AdapterArgs adapters;
  std::string precision = "fast";
  std::vector<int64_t> prompt_sizes = {256, 512};
  int64_t generate = 128;
  int repeat = 1;
  int64_t accuracy_tokens = 0;  // > 0: also compare fast with exact precision over this many positions
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::string isa;
  bool json = false;
};

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : 0.5 * (v[mid - 1] + v[mid]);
}

// Peak resident set of this process (VmHWM), in bytes; the mapped weights that were touched count.
size_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return size_t(std::stoull(line.substr(6))) * 1024;
  fail("/proc/self/status: no VmHWM line");
}

// <bos> and then a fixed clinical sentence over and over, cut to exactly n tokens: the same prompt on every
// run and machine, and one the tokenizer splits into ordinary words.
std::vector<TokenId> fixed_prompt(const Tokenizer& tokenizer, int64_t n) {
  const std::vector<TokenId> sentence = tokenizer.encode(
      " The chest radiograph shows clear lungs without focal consolidation, effusion or pneumothorax.");
  std::vector<TokenId> tokens = {tokenizer.bos()};
  while (int64_t(tokens.size()) < n) tokens.insert(tokens.end(), sentence.begin(), sentence.end());
  tokens.resize(size_t(n));
  return tokens;
}

struct ImageFigures {
  std::string source;
  int width = 0, height = 0;
  size_t prompt_tokens = 0;
  double encode_ms = 0, first_token_ms = 0;
};

// What fast precision costs against exact: at every position of a teacher-forced prompt, whether the most
// likely next token agrees, and the KL divergence of the fast next-token distribution from the exact one.
// For an image question also how far the fast soft tokens are from the exact ones: the root of the summed
// squared differences over that of the exact values.
struct AccuracyFigures {
  int64_t positions = 0;
  double top1_agreement = 0;  // fraction of positions
  double mean_kl = 0, max_kl = 0;  // nats
  double soft_token_error = 0;
};

struct Figures {
  double load_ms = 0;
  size_t weight_bytes = 0, text_weight_bytes = 0, kv_bytes = 0;
  int64_t n_ctx = 0;
  std::vector<double> prompt_ms;  // per --prompt-tokens size
  int64_t decode_steps = 0;
  double decode_ms = 0;
  std::optional<ImageFigures> image;
  std::optional<AccuracyFigures> accuracy, image_accuracy;
  size_t peak_rss = 0;
};

// log-softmax in double, so the KL of two close distributions is not lost to rounding.
std::vector<double> log_softmax(const std::vector<float>& logits) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - top);
  const double log_sum = top + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - log_sum;
  return out;
}

// Adds up the comparison of exact and fast next-token distributions, position by position.
class Agreement {
 public:
  void add(const std::vector<float>& exact_logits, const std::vector<float>& fast_logits) {
    const std::vector<double> p = log_softmax(exact_logits), q = log_softmax(fast_logits);
    double kl = 0;
    for (size_t i = 0; i < p.size(); ++i) kl += std::exp(p[i]) * (p[i] - q[i]);
    a_.mean_kl += kl;
    a_.max_kl = std::max(a_.max_kl, kl);
    agree_ += std::max_element(p.begin(), p.end()) - p.begin() == std::max_element(q.begin(), q.end()) - q.begin();
    ++a_.positions;
  }
  AccuracyFigures figures() const {
    AccuracyFigures a = a_;
    a.mean_kl /= double(a.positions);
    a.top1_agreement = double(agree_) / double(a.positions);
    return a;
  }

 private:
  AccuracyFigures a_;
  int64_t agree_ = 0;
};

AccuracyFigures measure_accuracy(const BenchOptions& o, const LoadedModel& model, ThreadPool& pool,
                                 const KernelTable& kernels) {
  const Gemma3& decoder = model.decoder;
  const std::vector<TokenId> prompt = fixed_prompt(model.tokenizer, o.accuracy_tokens);
  Gemma3State exact_state(decoder, o.accuracy_tokens), fast_state(decoder, o.accuracy_tokens);
  Gemma3Workspace exact(decoder, pool, kernels, Precision::Exact), fast(decoder, pool, kernels, Precision::Fast);
  std::vector<float> exact_logits(size_t(decoder.n_vocab())), fast_logits(exact_logits.size());
  Agreement agreement;
  for (const TokenId token : prompt) {
    decoder.forward(exact_state, exact, std::span(&token, 1), exact_logits.data());
    decoder.forward(fast_state, fast, std::span(&token, 1), fast_logits.data());
    agreement.add(exact_logits, fast_logits);
  }
  return agreement.figures();
}

// The image question's tokens: the chat template with the image after the text, expanded as the processor does.
std::vector<TokenId> image_question(const LoadedModel& model) {
  size_t markers = 0;
  const std::string text = expand_image_markers(render_chat({{"user", "Describe this X-ray.<start_of_image>"}}),
                                                model.vision->tokens_per_image(), markers);
  return model.tokenizer.encode(text, false);
}

// Time to the first answer token of an image question, from the decoded picture: preprocessing, the
// vision tower and projector, and the prefill of the prompt with its soft tokens.
ImageFigures measure_image(const BenchOptions& o, const LoadedModel& model, const Image& rgb, const std::string& source,
                           Session& session, ThreadPool& pool, const KernelTable& kernels) {
  const std::vector<TokenId> prompt = image_question(model);
  std::vector<double> encode_ms, first_token_ms;
  for (int r = 0; r < o.repeat; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const std::vector<ModelInput> inputs = preprocess_image(rgb, preprocess_options_for(*model.vision));
    auto embeddings = std::make_shared<std::vector<float>>(size_t(model.vision->tokens_per_image() * model.vision->output_dim()));
    const auto encode_start = std::chrono::steady_clock::now();
    model.vision->encode(inputs.front().pixels.data(), embeddings->data(), pool, kernels,
                         o.precision == "fast" ? Precision::Fast : Precision::Exact);
    encode_ms.push_back(ms_since(encode_start));
    const std::vector<ImageEmbeddings> placed = place_images(
        prompt, TokenId(model.checkpoint.config().image_token_index), model.vision->tokens_per_image(), {embeddings});
    GenerationSettings one_token;
    one_token.max_new_tokens = 1;
    session.generate(prompt, one_token, {}, placed);
    first_token_ms.push_back(ms_since(start));
  }
  return {source, rgb.width, rgb.height, prompt.size(), median(encode_ms), median(first_token_ms)};
}

// The image question in each precision, tower and decoder alike: the soft tokens compared, then the first
// accuracy_tokens answer positions, each precision fed exact's most likely token.
AccuracyFigures measure_image_accuracy(const BenchOptions& o, const LoadedModel& model, const Image& rgb,
                                       ThreadPool& pool, const KernelTable& kernels) {
  const Gemma3& decoder = model.decoder;
  const std::vector<TokenId> prompt = image_question(model);
  const std::vector<ModelInput> inputs = preprocess_image(rgb, preprocess_options_for(*model.vision));
  const int64_t n_ctx = int64_t(prompt.size()) + o.accuracy_tokens;
  const TokenId image_token = TokenId(model.checkpoint.config().image_token_index);
  auto encode = [&](Precision precision) {
    auto embeddings =
        std::make_shared<std::vector<float>>(size_t(model.vision->tokens_per_image() * model.vision->output_dim()));
    model.vision->encode(inputs.front().pixels.data(), embeddings->data(), pool, kernels, precision);
    return embeddings;
  };
  const std::shared_ptr<const std::vector<float>> exact_tokens = encode(Precision::Exact);
  const std::shared_ptr<const std::vector<float>> fast_tokens = encode(Precision::Fast);
  double difference = 0, norm = 0;
  for (size_t i = 0; i < exact_tokens->size(); ++i) {
    difference += std::pow(double((*fast_tokens)[i]) - (*exact_tokens)[i], 2);
    norm += std::pow(double((*exact_tokens)[i]), 2);
  }

  Gemma3State exact_state(decoder, n_ctx), fast_state(decoder, n_ctx);
  Gemma3Workspace exact(decoder, pool, kernels, Precision::Exact), fast(decoder, pool, kernels, Precision::Fast);
  std::vector<float> exact_logits(size_t(decoder.n_vocab())), fast_logits(exact_logits.size());
  decoder.forward(exact_state, exact, prompt, exact_logits.data(),
                  place_images(prompt, image_token, model.vision->tokens_per_image(), {exact_tokens}));
  decoder.forward(fast_state, fast, prompt, fast_logits.data(),
                  place_images(prompt, image_token, model.vision->tokens_per_image(), {fast_tokens}));
  Agreement agreement;
  agreement.add(exact_logits, fast_logits);
  for (int64_t i = 1; i < o.accuracy_tokens; ++i) {
    const TokenId token = TokenId(std::max_element(exact_logits.begin(), exact_logits.end()) - exact_logits.begin());
    decoder.forward(exact_state, exact, std::span(&token, 1), exact_logits.data());
    decoder.forward(fast_state, fast, std::span(&token, 1), fast_logits.data());
    agreement.add(exact_logits, fast_logits);
  }
  AccuracyFigures a = agreement.figures();
  a.soft_token_error = std::sqrt(difference / norm);
  return a;
}

Figures measure(const BenchOptions& o) {
  const KernelTable& kernels = o.isa.empty() ? best_kernels() : kernels_for(o.isa);
  Figures f;
  const auto load_start = std::chrono::steady_clock::now();
  const std::unique_ptr<LoadedModel> model = load_cli_model(o.model, o.mmproj, o.quant, o.adapters);
  f.load_ms = ms_since(load_start);
  for (const auto& [name, view] : model->checkpoint.tensors()) {
    f.weight_bytes += view.nbytes();
    if (name.rfind(model->checkpoint.layout().text, 0) == 0) f.text_weight_bytes += view.nbytes();
  }

  std::optional<Image> rgb;
  std::string image_source = o.image;
  if (!o.image.empty()) {
    if (!model->vision) fail(o.model, ": a text-only model (", model->checkpoint.config().architecture, ") cannot take --image");
    if (o.image == "synthetic") {
      rgb = synthetic_image();
    } else {
      PromptImage read = read_prompt_image(o.image);
      rgb = std::move(read.rgb);
      image_source = read.file;
    }
  }

  const int64_t longest_prompt = *std::max_element(o.prompt_sizes.begin(), o.prompt_sizes.end());
  f.n_ctx = std::max(longest_prompt + 1, o.prompt_sizes.front() + o.generate);
  if (rgb) f.n_ctx = std::max(f.n_ctx, int64_t(image_question(*model).size()) + 1);
  const int64_t max_ctx = model->decoder.config().max_position_embeddings;
  if (f.n_ctx > max_ctx) fail("bench: ", f.n_ctx, " tokens of context exceed the model's max_position_embeddings (", max_ctx, ")");

  ThreadPool pool(o.threads);
  Session session(*model, f.n_ctx, pool, kernels, o.precision == "fast" ? Precision::Fast : Precision::Exact);
  f.kv_bytes = session.state().kv_bytes();
  // The first prompt size is followed by the decode, every token generated whatever it is (stop tokens
  // ignored); the other sizes stop at their first token.
  std::vector<double> decode_ms;
  for (size_t i = 0; i < o.prompt_sizes.size(); ++i) {
    const std::vector<TokenId> prompt = fixed_prompt(model->tokenizer, o.prompt_sizes[i]);
    GenerationSettings settings;
    settings.max_new_tokens = i == 0 ? o.generate : 1;
    settings.ignore_eos = true;
    std::vector<double> prompt_ms;
    for (int r = 0; r < o.repeat; ++r) {
      const GenerationResult g = session.generate(prompt, settings);
      prompt_ms.push_back(g.prefill_ms);
      if (i == 0) {
        f.decode_steps = g.decode_steps;
        decode_ms.push_back(g.decode_ms);
      }
    }
    f.prompt_ms.push_back(median(prompt_ms));
  }
  f.decode_ms = median(decode_ms);
  if (rgb) f.image = measure_image(o, *model, *rgb, image_source, session, pool, kernels);
  if (o.accuracy_tokens > 0) f.accuracy = measure_accuracy(o, *model, pool, kernels);
  if (o.accuracy_tokens > 0 && rgb) f.image_accuracy = measure_image_accuracy(o, *model, *rgb, pool, kernels);
  f.peak_rss = peak_rss_bytes();
  return f;
}

double per_second(double count, double ms) { return ms > 0 ? 1000.0 * count / ms : 0.0; }

nlohmann::json figures_json(const BenchOptions& o, const Figures& f) {
  nlohmann::json prompts = nlohmann::json::array();
  for (size_t i = 0; i < o.prompt_sizes.size(); ++i)
    prompts.push_back({{"tokens", o.prompt_sizes[i]},
                       {"ms", f.prompt_ms[i]},
                       {"tokens_per_s", per_second(double(o.prompt_sizes[i]), f.prompt_ms[i])}});
  nlohmann::json out = {
      {"model", o.model},
      {"quant", o.quant.empty() ? "none" : o.quant},
      {"precision", o.precision},
      {"threads", o.threads},
      {"isa", isa_name((o.isa.empty() ? best_kernels() : kernels_for(o.isa)).isa)},
      {"repeat", o.repeat},
      {"load_ms", f.load_ms},
      {"weight_bytes", f.weight_bytes},
      {"text_weight_bytes", f.text_weight_bytes},
      {"n_ctx", f.n_ctx},
      {"kv_bytes", f.kv_bytes},
      {"peak_rss_bytes", f.peak_rss},
      {"prompt", prompts},
      {"decode",
       {{"tokens", o.generate},
        {"after_prompt_tokens", o.prompt_sizes.front()},
        {"steps", f.decode_steps},
        {"ms", f.decode_ms},
        {"tokens_per_s", per_second(double(f.decode_steps), f.decode_ms)}}},
  };
  if (!o.adapters.lora.empty()) out["lora"] = {{"adapters", o.adapters.lora}, {"merged", o.adapters.merge}};
  if (f.accuracy)
    out["fast_vs_exact"] = {{"positions", f.accuracy->positions},
                            {"top1_agreement", f.accuracy->top1_agreement},
                            {"mean_kl", f.accuracy->mean_kl},
                            {"max_kl", f.accuracy->max_kl}};
  if (f.image)
    out["image"] = {{"source", f.image->source},         {"width", f.image->width},
                    {"height", f.image->height},         {"prompt_tokens", f.image->prompt_tokens},
                    {"encode_ms", f.image->encode_ms},   {"first_token_ms", f.image->first_token_ms}};
  if (f.image_accuracy)
    out["image"]["fast_vs_exact"] = {{"answer_positions", f.image_accuracy->positions},
                                     {"top1_agreement", f.image_accuracy->top1_agreement},
                                     {"mean_kl", f.image_accuracy->mean_kl},
                                     {"max_kl", f.image_accuracy->max_kl},
                                     {"soft_token_relative_error", f.image_accuracy->soft_token_error}};
  return out;
}

void print_table(const BenchOptions& o, const Figures& f) {
  const auto gb = [](size_t bytes) { return double(bytes) / 1e9; };
  std::printf("model %s | quant %s | precision %s | %d threads | kernels %s | median of %d\n", o.model.c_str(),
              o.quant.empty() ? "none" : o.quant.c_str(), o.precision.c_str(), o.threads,
              isa_name((o.isa.empty() ? best_kernels() : kernels_for(o.isa)).isa), o.repeat);
  for (const std::string& lora : o.adapters.lora)
    std::printf("LoRA adapter %s, %s\n", lora.c_str(), o.adapters.merge ? "merged" : "at run time");
  std::printf("%-46s %14s\n", "what", "figure");
  std::printf("%-46s %11.0f ms\n", "load", f.load_ms);
  for (size_t i = 0; i < o.prompt_sizes.size(); ++i) {
    const std::string what = "prompt, " + std::to_string(o.prompt_sizes[i]) + " tokens";
    std::printf("%-46s %10.2f tok/s  (%.0f ms)\n", what.c_str(), per_second(double(o.prompt_sizes[i]), f.prompt_ms[i]),
                f.prompt_ms[i]);
  }
  const std::string decode = "decode, " + std::to_string(f.decode_steps) + " steps after " +
                             std::to_string(o.prompt_sizes.front()) + " tokens";
  std::printf("%-46s %10.2f tok/s\n", decode.c_str(), per_second(double(f.decode_steps), f.decode_ms));
  if (f.image) {
    std::printf("%-46s %11.0f ms\n", "image encode (tower + projector)", f.image->encode_ms);
    const std::string first = "first answer token, image question (" + std::to_string(f.image->prompt_tokens) + " tok)";
    std::printf("%-46s %11.0f ms\n", first.c_str(), f.image->first_token_ms);
  }
  if (f.accuracy) {
    const std::string what = "fast vs exact, " + std::to_string(f.accuracy->positions) + " positions";
    std::printf("%-46s %10.1f %% top-1 agree, KL mean %.2e max %.2e\n", what.c_str(), 100 * f.accuracy->top1_agreement,
                f.accuracy->mean_kl, f.accuracy->max_kl);
  }
  if (f.image_accuracy) {
    const AccuracyFigures& a = *f.image_accuracy;
    const std::string what = "fast vs exact, image, " + std::to_string(a.positions) + " answer positions";
    std::printf("%-46s %10.1f %% top-1 agree, KL mean %.2e max %.2e; soft tokens off by %.2e (relative)\n",
                what.c_str(), 100 * a.top1_agreement, a.mean_kl, a.max_kl, a.soft_token_error);
  }
  std::printf("%-46s %11.2f GB  (text %.2f GB)\n", "weights", gb(f.weight_bytes), gb(f.text_weight_bytes));
  const std::string kv = "KV cache, " + std::to_string(f.n_ctx) + " tokens";
  std::printf("%-46s %11.2f MB\n", kv.c_str(), double(f.kv_bytes) / 1e6);
  std::printf("%-46s %11.2f GB\n", "peak RSS", gb(f.peak_rss));
}

void run(const BenchOptions& o) {
  if (o.prompt_sizes.empty()) fail("bench: -p needs at least one prompt size");
  for (int64_t n : o.prompt_sizes)
    if (n < 1) fail("bench: prompt size ", n, " must be at least 1");
  const Figures f = measure(o);
  if (o.json)
    std::cout << figures_json(o, f).dump() << "\n";
  else
    print_table(o, f);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure a model's speed on this machine: prompt processing and decoding (tokens/s), image encoding and the\n"
      "time to the first answer token of an image question, load time, weight and KV-cache bytes, peak RSS.\n"
      "Prompts are a fixed sentence repeated to exactly the size asked; decoding ignores stop tokens.");
  cmd->add_option("-m,--model", o->model, "Model folder (Hugging Face layout), cached Hugging Face id or .gguf file")->required();
  cmd->add_option("--mmproj", o->mmproj, "llama.cpp projector file for a .gguf model's vision tower")->check(CLI::ExistingFile);
  cmd->add_option("-p,--prompt-tokens", o->prompt_sizes, "Prompt sizes in tokens, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--generate", o->generate, "Tokens to generate after the first prompt size")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--image", o->image, "Also time an image question: a PNG, JPEG or DICOM file, or 'synthetic' (896 x 896)");
  cmd->add_option("--quant", o->quant, "Quantize the decoder's matrices at load: q8_0, q4_0, q4_k, q5_k, q6_k or nf4");
  add_adapter_options(*cmd, o->adapters);
  cmd->add_option("--precision", o->precision,
                  "exact (f32 throughout) or fast (as llama.cpp: int8 activations against quantized weights, bf16 "
                  "against bf16 weights; vision attention in bf16 with AVX512-BF16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "fast"}));
  cmd->add_option("--accuracy", o->accuracy_tokens,
                  "Also measure what fast precision costs: feed this many tokens of the fixed prompt through both "
                  "precisions and report top-1 agreement and the KL divergence of fast from exact; with --image, "
                  "also answer the image question in both (tower and decoder) and compare this many answer positions")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--repeat", o->repeat, "Runs of each measurement; the median is reported")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_option("--isa", o->isa, "Force a kernel set: scalar, avx2, avx512 or amx (default: the best this CPU runs)");
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the table");
  cmd->callback([o] { run(*o); });
}

}  // namespace medlab::cli
