// medlab run: generate an answer to a prompt, streaming it, or as JSON with tokens, timings and log-probs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "cli/command_support.h"
#include "imaging/dicom_series.h"
#include "repro/run_manifest.h"
#include "repro/weights.h"
#include "runtime/images.h"
#include "runtime/session.h"

namespace medlab::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string mmproj;  // llama.cpp vision projector beside a .gguf model
  std::string quant;   // quantize the decoder's matrices at load: q8_0, q4_0, q4_k, q5_k, q6_k, nf4
  AdapterArgs adapters;
  std::string prompt;
  std::string system;
  std::string chat_file;
  bool raw_prompt = false;
  std::vector<std::string> images;
  std::string series;     // a folder of DICOM slices
  size_t max_slices = 85;
  ImageReadOptions image_read;
  bool letterbox = false;
  GenerationSettings generation;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  int64_t ctx_size = 0;
  std::string isa;
  std::string precision = "fast";
  bool json = false;
};

std::vector<ChatMessage> read_chat_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open");
  const auto json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_discarded() || !json.is_array()) fail(path, ": expected a JSON array of {\"role\", \"content\"} messages");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < json.size(); ++i) {
    const auto& m = json[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
      fail(path, ": message ", i, " needs string fields \"role\" and \"content\"");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

// The prompt text: --raw-prompt as given (it carries its own <bos>, turns and image markers), a --chat
// file (image markers written in its messages), or --prompt in the chat template with the images after
// the text, as the MedGemma model card orders them.
std::string prompt_text(const RunOptions& o) {
  if (o.raw_prompt) return o.prompt;
  std::vector<ChatMessage> messages;
  if (!o.chat_file.empty()) {
    messages = read_chat_file(o.chat_file);
  } else {
    if (!o.system.empty()) messages.push_back({"system", o.system});
    std::string content = o.prompt;
    for (size_t i = 0; i < o.images.size(); ++i) {
      content += "<start_of_image>";
      if (!o.series.empty()) content += "SLICE " + std::to_string(i + 1);
    }
    messages.push_back({"user", content});
  }
  return render_chat(messages);
}

struct EncodedImage {
  PromptImage image;
  ImageEmbeddingCache::Encoded encoded;
};

std::vector<EncodedImage> encode_images(const RunOptions& o, const LoadedModel& model, ImageEmbeddingCache& cache,
                                        ThreadPool& pool, const KernelTable& kernels) {
  std::vector<EncodedImage> encoded;
  if (o.images.empty()) return encoded;
  if (!model.vision && model.checkpoint.gguf())
    fail(model.checkpoint.gguf()->path(), ": --image needs the model's vision projector: pass its mmproj file with --mmproj");
  if (!model.vision) fail(model.checkpoint.dir().string(), ": a text-only model (", model.checkpoint.config().architecture, ") cannot take --image");
  PreprocessOptions preprocess = preprocess_options_for(*model.vision);
  if (o.letterbox) preprocess.fit = Fit::Letterbox;
  for (const std::string& path : o.images) {
    PromptImage image = read_prompt_image(path, o.image_read);
    const std::vector<ModelInput> inputs = preprocess_image(image.rgb, preprocess);
    encoded.push_back({std::move(image), cache.encode(*model.vision, inputs.front(), pool, kernels,
                                                      o.precision == "exact" ? Precision::Exact : Precision::Fast)});
  }
  return encoded;
}

nlohmann::json result_json(const RunOptions& o, const LoadedModel& model, const GenerationResult& r, double load_ms,
                           int threads, const RunManifest& manifest, const std::vector<EncodedImage>& images) {
  const Tokenizer& tok = model.tokenizer;
  nlohmann::json tokens = nlohmann::json::array(), logprobs = nlohmann::json::array();
  for (const GeneratedToken& t : r.tokens) {
    tokens.push_back(t.id);
    if (o.generation.logprobs > 0) {
      nlohmann::json top = nlohmann::json::array();
      for (auto [id, lp] : t.top) top.push_back({{"id", id}, {"piece", tok.piece(id)}, {"logprob", lp}});
      logprobs.push_back({{"id", t.id}, {"piece", tok.piece(t.id)}, {"logprob", t.logprob}, {"top", top}});
    }
  }
  nlohmann::json out = {
      {"model", model.checkpoint.gguf() ? model.checkpoint.gguf()->path() : model.checkpoint.dir().string()},
      {"test_model", model.test_model_note.has_value()},
      {"text", r.text},
      {"stop_reason", r.stop_reason},
      {"prompt_tokens", r.prompt_tokens},
      {"tokens", tokens},
      {"seed", manifest.generation.sampler.seed},
      {"model_sha256", manifest.model_sha256},
      {"run", manifest_json(manifest)},
      {"threads", threads},
      {"timings",
       {{"load_ms", load_ms},
        {"prefill_ms", r.prefill_ms},
        {"prefill_tokens_per_s", r.prefill_ms > 0 ? 1000.0 * double(r.prompt_tokens.size()) / r.prefill_ms : 0.0},
        {"decode_ms", r.decode_ms},
        {"decode_tokens_per_s", r.decode_ms > 0 ? 1000.0 * double(r.decode_steps) / r.decode_ms : 0.0}}},
  };
  if (o.generation.logprobs > 0) out["logprobs"] = logprobs;
  nlohmann::json image_json = nlohmann::json::array(), encode_ms = nlohmann::json::array();
  for (const EncodedImage& e : images) {
    nlohmann::json j = {{"file", e.image.file}, {"source", e.image.source}, {"width", e.image.rgb.width},
                        {"height", e.image.rgb.height}, {"encode_ms", e.encoded.encode_ms}, {"cached", e.encoded.cached}};
    j["pixel_sha256"] = pixel_sha256(e.image.rgb);
    if (e.image.dicom_pixel_sha256) j["dicom_pixel_sha256"] = *e.image.dicom_pixel_sha256;
    image_json.push_back(j);
    encode_ms.push_back(e.encoded.encode_ms);
  }
  if (!images.empty()) {
    out["images"] = image_json;
    out["timings"]["image_encode_ms"] = encode_ms;
  }
  return out;
}

// The slices of the folder's largest series, ordered along the slice normal and sampled as the MedGemma
// CT notebook does; they become the run's images, each labelled "SLICE n" in the prompt.
void add_series(RunOptions& o) {
  const dicom::FolderScan scan = dicom::scan_folder(o.series);
  if (scan.series.empty()) fail(o.series, ": no DICOM image series in this folder");
  const dicom::Series& series = scan.series.front();
  for (size_t index : dicom::sample_slices(series.slices.size(), o.max_slices)) o.images.push_back(series.slices[index].path);
  std::fprintf(stderr, "medlab: series of %zu slices (%s, ordered by %s); %zu sampled\n", series.slices.size(),
               series.modality.c_str(), dicom::slice_order_name(series.order), o.images.size());
}

void run(RunOptions o) {
  if (o.prompt.empty() == o.chat_file.empty()) fail("run: give exactly one of --prompt or --chat");
  if (!o.series.empty()) {
    if (!o.images.empty() || o.raw_prompt || !o.chat_file.empty())
      fail("run: --series builds its own prompt; it cannot be combined with --image, --raw-prompt or --chat");
    add_series(o);
  }
  if (o.raw_prompt && !o.chat_file.empty()) fail("run: --raw-prompt applies to --prompt only");
  const KernelTable& kernels = o.isa.empty() ? best_kernels() : kernels_for(o.isa);

  const auto load_start = std::chrono::steady_clock::now();
  const std::unique_ptr<LoadedModel> model = load_cli_model(o.model, o.mmproj, o.quant, o.adapters);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();

  ThreadPool pool(o.threads);
  ImageEmbeddingCache cache;
  const std::vector<EncodedImage> images = encode_images(o, *model, cache, pool, kernels);
  size_t markers = 0;
  const std::string text = model->vision ? expand_image_markers(prompt_text(o), model->vision->tokens_per_image(), markers)
                                         : prompt_text(o);
  if (markers != images.size())
    fail("prompt: ", markers, " <start_of_image> markers for ", images.size(), " --image files");
  const std::vector<TokenId> prompt = model->tokenizer.encode(text, false);  // the text starts with <bos>
  std::vector<std::shared_ptr<const std::vector<float>>> embeddings;
  for (const EncodedImage& e : images) embeddings.push_back(e.encoded.embeddings);
  const std::vector<ImageEmbeddings> placed =
      images.empty() ? std::vector<ImageEmbeddings>{}
                     : place_images(prompt, TokenId(model->checkpoint.config().image_token_index),
                                    model->vision->tokens_per_image(), embeddings);
  const int64_t max_ctx = model->decoder.config().max_position_embeddings;
  const int64_t n_ctx = o.ctx_size > 0 ? o.ctx_size : std::min(max_ctx, int64_t(prompt.size()) + o.generation.max_new_tokens);
  if (int64_t(prompt.size()) >= n_ctx)
    fail("prompt: ", prompt.size(), " tokens do not fit the context of ", n_ctx, " tokens",
         o.ctx_size > 0 ? " (--ctx-size)" : " (the model's max_position_embeddings)");

  Session session(*model, n_ctx, pool, kernels, o.precision == "exact" ? Precision::Exact : Precision::Fast);
  GenerationResult result;
  if (o.json) {
    result = session.generate(prompt, o.generation, {}, placed);
    const WeightHashes hashes = hash_weights(model->checkpoint, {}, weight_hash_cache());
    const RunManifest manifest{hashes.model_sha256, isa_name(kernels.isa), o.precision, o.generation, hashes.adapters};
    std::cout << result_json(o, *model, result, load_ms, o.threads, manifest, images)
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return;
  }
  for (const EncodedImage& e : images)
    std::fprintf(stderr, "medlab: image %s (%s, %dx%d) encoded in %.0f ms\n", e.image.file.c_str(), e.image.source.c_str(),
                 e.image.rgb.width, e.image.rgb.height, e.encoded.encode_ms);
  result = session.generate(
      prompt, o.generation,
      [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      },
      placed);
  std::printf("\n");
  std::fprintf(stderr, "medlab: load %.0f ms | prompt %zu tokens, %.1f tokens/s | generated %zu tokens, %.1f tokens/s | stop: %s\n",
               load_ms, prompt.size(), 1000.0 * double(prompt.size()) / std::max(result.prefill_ms, 1e-9),
               result.tokens.size(), 1000.0 * double(result.decode_steps) / std::max(result.decode_ms, 1e-9),
               result.stop_reason.c_str());
}

}  // namespace

void register_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Answer a prompt with a model, streaming the text as it is generated.");
  cmd->add_option("-m,--model", o->model, "Model folder (Hugging Face layout), a cached Hugging Face id, or a llama.cpp "
                  "gemma3 .gguf file")->required();
  cmd->add_option("--mmproj", o->mmproj, "With a .gguf model: its llama.cpp vision projector (mmproj .gguf), for --image")
      ->check(CLI::ExistingFile);
  cmd->add_option("--quant", o->quant, "Quantize the decoder's matrices and embedding at load (f32/f16/bf16 checkpoints): "
                                       "q8_0, q4_0, q4_k, q5_k, q6_k (llama.cpp's blocks, bytes as llama-quantize) or nf4")
      ->check(CLI::IsMember({"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "nf4"}));
  add_adapter_options(*cmd, o->adapters);
  cmd->add_option("-p,--prompt", o->prompt, "The user's message (put in the Gemma 3 chat template)");
  cmd->add_option("--system", o->system, "System prompt (folded into the first user turn, as Gemma 3 does)");
  cmd->add_option("--chat", o->chat_file, "JSON file with a conversation: [{\"role\": \"user\"|\"assistant\"|\"system\", \"content\": ...}]");
  cmd->add_flag("--raw-prompt", o->raw_prompt,
                "Tokenize --prompt as given, without the chat template (write <bos> yourself; <start_of_image> marks each --image)");
  cmd->add_option("-i,--image", o->images, "PNG, JPEG or DICOM image for the question (repeatable; in order)")->check(CLI::ExistingFile);
  cmd->add_option("--series", o->series,
                  "Folder of DICOM slices: its largest series, sorted along the slice normal and sampled evenly, goes to "
                  "the model as images after the prompt, each labelled \"SLICE n\" (window ct-rgb unless --window is given)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--slices", o->max_slices, "With --series: at most this many slices")->capture_default_str()->check(CLI::Range(1, 1000));
  auto* window = cmd->add_option("--window", o->image_read.dicom_window,
                                 "DICOM window: file, file:N, full, lung, mediastinum, bone, brain, abdomen, soft-tissue, C,W, ct-rgb, cxr")
                     ->capture_default_str();
  cmd->add_option("--frame", o->image_read.dicom_frame, "DICOM frame, counted from 0")->capture_default_str();
  cmd->add_flag("--letterbox", o->letterbox, "Keep the image's aspect ratio and pad with black, instead of stretching as the reference does");
  cmd->add_option("--max-pixels", o->image_read.decode.max_pixels, "Refuse images with more pixels than this")->capture_default_str();
  cmd->add_option("-n,--max-new-tokens", o->generation.max_new_tokens, "Most tokens to generate")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", o->generation.sampler.temperature, "Sampling temperature; 0 picks the most likely token (greedy)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->generation.sampler.top_k, "Keep the k most likely tokens (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->generation.sampler.top_p, "Keep the smallest set of tokens whose probability reaches p")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", o->generation.sampler.min_p, "Drop tokens less likely than min-p times the most likely")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repetition-penalty", o->generation.sampler.repetition_penalty, "Penalty for tokens already seen (1: off)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->generation.sampler.seed, "Seed of the sampler's counter-based generator")->capture_default_str();
  cmd->add_option("--stop", o->generation.stop_strings, "Stop before this text (repeatable)");
  cmd->add_flag("--ignore-eos", o->generation.ignore_eos, "Do not stop at <eos> or <end_of_turn>");
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx_size, "Context length in tokens (default: prompt + max-new-tokens)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--isa", o->isa, "Force a kernel set: scalar, avx2, avx512 or amx (default: the best this CPU runs)");
  cmd->add_option("--precision", o->precision, "exact (weights widened to f32, as the parity tests run) or fast (as llama.cpp: "
                  "int8 activations against quantized weights, bf16 against bf16 weights, and the vision tower's attention "
                  "in bf16 where the CPU has AVX512-BF16; f32 and f16 weights are exact either way)")
      ->capture_default_str()->check(CLI::IsMember({"exact", "fast"}));
  cmd->add_flag("--json", o->json, "Print one JSON object: text, token ids, timings (and log-probs)");
  cmd->add_option("--logprobs", o->generation.logprobs, "With --json: the top-K log-probabilities at each step")->check(CLI::Range(0, 100));
  cmd->callback([o, window] {
    RunOptions options = *o;
    if (!options.series.empty() && window->count() == 0) options.image_read.dicom_window = "ct-rgb";  // MedGemma's CT convention
    run(std::move(options));
  });
}

}  // namespace medlab::cli
