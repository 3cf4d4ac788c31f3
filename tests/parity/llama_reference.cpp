// llama_reference: runs a GGUF through llama.cpp and prints what the parity tests compare medlab with:
// the prompt's token ids, then at each greedy step the chosen token and the top-n log-probabilities,
// computed from llama.cpp's raw logits (log-softmax over the whole vocabulary).
//
// llama.cpp is the build inside @fugood/llama.node (tools/reference), the same library its JavaScript
// API drives; that API only reports probabilities after its samplers ran (temperature 0 makes them
// 1, 0, 0, ...), so this program loads the addon with dlopen and calls llama.cpp's C API directly.
//
//   llama_reference [--addon PATH/index.node] REQUEST.json > RESULT.json
//   request: {"gguf": path, "mmproj": path (optional), "n_ctx": 512, "n_threads": 2, "n_top": 5,
//             "prompts": [{"name": ..., "text": ..., "n_predict": 32, "images": [paths]}],
//             "texts": [strings to tokenize]}
//   result:  {"n_vocab": N, "add_bos": bool, "prompts": [{"name", "prompt_tokens": [ids],
//             "steps": [{"id", "token", "logprob", "top": [{"id", "token", "logprob"}]}],
//             "images": [{"width", "height"}], "non_causal": bool}], "tokenized": [[ids] per text]}
//
// A prompt that starts with the BOS token's text is tokenized without it and with add_special, so
// llama.cpp adds BOS itself as its add_bos_token metadata says (checking that key too). Other text is
// tokenized with special tokens parsed ("<start_of_turn>" becomes one token), as llama.cpp's tools do.
// The KV cache is kept in f32 and flash attention off: the default f16 cache would add rounding that
// is llama.cpp's choice, not the model's.
//
// A prompt with images goes through llama.cpp's multimodal library (mtmd) and the mmproj: each
// mtmd_default_marker() ("<__media__>") in its text is where an image goes, in order; mtmd frames it
// with the projector's own tokens (<start_of_image> ... <end_of_image> for Gemma 3), decodes the images
// from their files and evaluates the prompt. An image's soft tokens are listed in prompt_tokens as the
// id of <image_soft_token>, which is what stands for them in the text model's prompt.
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llama.h"
#include "mtmd_api.h"

namespace {

using nlohmann::json;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "llama_reference: %s\n", what.c_str());
  std::exit(1);
}

// The C API functions this program uses, looked up in the addon.
struct Llama {
#define LLAMA_FN(name) decltype(&::name) name = nullptr
  LLAMA_FN(llama_backend_init);
  LLAMA_FN(llama_log_set);
  LLAMA_FN(llama_model_default_params);
  LLAMA_FN(llama_context_default_params);
  LLAMA_FN(llama_model_load_from_file);
  LLAMA_FN(llama_model_free);
  LLAMA_FN(llama_init_from_model);
  LLAMA_FN(llama_free);
  LLAMA_FN(llama_model_get_vocab);
  LLAMA_FN(llama_vocab_n_tokens);
  LLAMA_FN(llama_vocab_bos);
  LLAMA_FN(llama_vocab_get_add_bos);
  LLAMA_FN(llama_vocab_get_text);
  LLAMA_FN(llama_tokenize);
  LLAMA_FN(llama_batch_get_one);
  LLAMA_FN(llama_decode);
  LLAMA_FN(llama_get_logits_ith);
  LLAMA_FN(llama_get_memory);
  LLAMA_FN(llama_memory_clear);
  LLAMA_FN(mtmd_default_marker);
  LLAMA_FN(mtmd_context_params_default);
  LLAMA_FN(mtmd_init_from_file);
  LLAMA_FN(mtmd_free);
  LLAMA_FN(mtmd_support_vision);
  LLAMA_FN(mtmd_decode_use_non_causal);
  LLAMA_FN(mtmd_bitmap_get_nx);
  LLAMA_FN(mtmd_bitmap_get_ny);
  LLAMA_FN(mtmd_bitmap_free);
  LLAMA_FN(mtmd_input_chunks_init);
  LLAMA_FN(mtmd_input_chunks_size);
  LLAMA_FN(mtmd_input_chunks_get);
  LLAMA_FN(mtmd_input_chunks_free);
  LLAMA_FN(mtmd_input_chunk_get_type);
  LLAMA_FN(mtmd_input_chunk_get_tokens_text);
  LLAMA_FN(mtmd_input_chunk_get_n_tokens);
  LLAMA_FN(mtmd_tokenize);
  LLAMA_FN(mtmd_helper_log_set);
  LLAMA_FN(mtmd_helper_bitmap_init_from_file);
  LLAMA_FN(mtmd_helper_eval_chunks);
#undef LLAMA_FN

  explicit Llama(const std::string& addon) {
    // Lazy binding: the addon also refers to Node's N-API, which is never called here.
    void* lib = dlopen(addon.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (!lib) die("cannot load " + addon + ": " + dlerror() + " (run scripts/setup.sh to install tools/reference)");
    const auto find = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn) die(addon + " has no symbol " + name + "; is it a llama.cpp build?");
    };
#define LLAMA_FIND(name) find(name, #name)
    LLAMA_FIND(llama_backend_init);
    LLAMA_FIND(llama_log_set);
    LLAMA_FIND(llama_model_default_params);
    LLAMA_FIND(llama_context_default_params);
    LLAMA_FIND(llama_model_load_from_file);
    LLAMA_FIND(llama_model_free);
    LLAMA_FIND(llama_init_from_model);
    LLAMA_FIND(llama_free);
    LLAMA_FIND(llama_model_get_vocab);
    LLAMA_FIND(llama_vocab_n_tokens);
    LLAMA_FIND(llama_vocab_bos);
    LLAMA_FIND(llama_vocab_get_add_bos);
    LLAMA_FIND(llama_vocab_get_text);
    LLAMA_FIND(llama_tokenize);
    LLAMA_FIND(llama_batch_get_one);
    LLAMA_FIND(llama_decode);
    LLAMA_FIND(llama_get_logits_ith);
    LLAMA_FIND(llama_get_memory);
    LLAMA_FIND(llama_memory_clear);
    LLAMA_FIND(mtmd_default_marker);
    LLAMA_FIND(mtmd_context_params_default);
    LLAMA_FIND(mtmd_init_from_file);
    LLAMA_FIND(mtmd_free);
    LLAMA_FIND(mtmd_support_vision);
    LLAMA_FIND(mtmd_decode_use_non_causal);
    LLAMA_FIND(mtmd_bitmap_get_nx);
    LLAMA_FIND(mtmd_bitmap_get_ny);
    LLAMA_FIND(mtmd_bitmap_free);
    LLAMA_FIND(mtmd_input_chunks_init);
    LLAMA_FIND(mtmd_input_chunks_size);
    LLAMA_FIND(mtmd_input_chunks_get);
    LLAMA_FIND(mtmd_input_chunks_free);
    LLAMA_FIND(mtmd_input_chunk_get_type);
    LLAMA_FIND(mtmd_input_chunk_get_tokens_text);
    LLAMA_FIND(mtmd_input_chunk_get_n_tokens);
    LLAMA_FIND(mtmd_tokenize);
    LLAMA_FIND(mtmd_helper_log_set);
    LLAMA_FIND(mtmd_helper_bitmap_init_from_file);
    LLAMA_FIND(mtmd_helper_eval_chunks);
#undef LLAMA_FIND
  }
};

std::vector<llama_token> tokenize(const Llama& L, const llama_vocab* vocab, const std::string& text, bool add_special) {
  std::vector<llama_token> ids(text.size() + 8);
  const auto call = [&] {
    return L.llama_tokenize(vocab, text.data(), int32_t(text.size()), ids.data(), int32_t(ids.size()), add_special,
                            /*parse_special=*/true);
  };
  int32_t n = call();
  if (n < 0) {  // -n is the size needed
    ids.resize(size_t(-n));
    n = call();
  }
  if (n < 0) die("tokenization failed");
  ids.resize(size_t(n));
  return ids;
}

// Greedy generation after `prefill` has evaluated the prompt (leaving the logits of its last token),
// recording the top `n_top` log-probabilities at each step.
template <class Prefill>
json generate(const Llama& L, llama_context* ctx, const llama_vocab* vocab, const Prefill& prefill, int n_predict,
              int n_top) {
  const int32_t n_vocab = L.llama_vocab_n_tokens(vocab);
  L.llama_memory_clear(L.llama_get_memory(ctx), true);
  prefill();
  json steps = json::array();
  std::vector<double> logprob(static_cast<size_t>(n_vocab));
  std::vector<int32_t> order(static_cast<size_t>(n_vocab));
  for (int step = 0; step < n_predict; ++step) {
    const float* logits = L.llama_get_logits_ith(ctx, -1);
    const double max_logit = *std::max_element(logits, logits + n_vocab);
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max_logit);
    const double log_z = max_logit + std::log(sum);
    for (int32_t i = 0; i < n_vocab; ++i) logprob[size_t(i)] = double(logits[i]) - log_z;
    // Highest first; equal values by id, so the greedy choice is the lowest id among ties.
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + n_top, order.end(), [&](int32_t a, int32_t b) {
      return logprob[size_t(a)] != logprob[size_t(b)] ? logprob[size_t(a)] > logprob[size_t(b)] : a < b;
    });
    json top = json::array();
    for (int k = 0; k < n_top; ++k) {
      const int32_t id = order[size_t(k)];
      top.push_back({{"id", id}, {"token", L.llama_vocab_get_text(vocab, id)}, {"logprob", logprob[size_t(id)]}});
    }
    llama_token chosen = order[0];
    steps.push_back({{"id", chosen}, {"token", L.llama_vocab_get_text(vocab, chosen)},
                     {"logprob", logprob[size_t(chosen)]}, {"top", top}});
    if (step + 1 < n_predict && L.llama_decode(ctx, L.llama_batch_get_one(&chosen, 1)) != 0)
      die("llama_decode failed at step " + std::to_string(step + 1) + " (is n_ctx large enough?)");
  }
  return steps;
}

// Removes a leading BOS text when llama.cpp adds BOS itself (see the top of the file); true if it did.
bool strip_leading_bos(const Llama& L, const llama_vocab* vocab, bool add_bos, std::string& text) {
  const std::string bos_text = L.llama_vocab_get_text(vocab, L.llama_vocab_bos(vocab));
  if (!add_bos || text.rfind(bos_text, 0) != 0) return false;
  text.erase(0, bos_text.size());
  return true;
}

json run_text_prompt(const Llama& L, llama_context* ctx, const llama_vocab* vocab, const json& p, bool add_bos,
                     int n_ctx, int n_top) {
  std::string text = p.at("text").get<std::string>();
  const bool strip_bos = strip_leading_bos(L, vocab, add_bos, text);
  std::vector<llama_token> prompt = tokenize(L, vocab, text, strip_bos);
  const int n_predict = p.value("n_predict", 32);
  if (int(prompt.size()) + n_predict > n_ctx)
    die("prompt '" + p.value("name", "") + "' does not fit n_ctx " + std::to_string(n_ctx));
  const auto prefill = [&] {
    if (L.llama_decode(ctx, L.llama_batch_get_one(prompt.data(), int32_t(prompt.size()))) != 0)
      die("llama_decode failed on the prompt of '" + p.value("name", "") + "'");
  };
  return {{"name", p.value("name", "")}, {"prompt_tokens", prompt},
          {"steps", generate(L, ctx, vocab, prefill, n_predict, n_top)}};
}

// A prompt with images, through mtmd (see the top of the file).
json run_image_prompt(const Llama& L, llama_context* ctx, mtmd_context* mctx, const llama_vocab* vocab, const json& p,
                      bool add_bos, int n_ctx, int n_top) {
  const std::string name = p.value("name", "");
  std::string text = p.at("text").get<std::string>();
  const bool strip_bos = strip_leading_bos(L, vocab, add_bos, text);

  std::vector<mtmd_bitmap*> bitmaps;
  json images = json::array();
  for (const json& path : p.at("images")) {
    const std::string file = path.get<std::string>();
    mtmd_bitmap* bitmap = L.mtmd_helper_bitmap_init_from_file(mctx, file.c_str(), false).bitmap;
    if (!bitmap) die("llama.cpp could not read the image " + file);
    bitmaps.push_back(bitmap);
    images.push_back({{"width", L.mtmd_bitmap_get_nx(bitmap)}, {"height", L.mtmd_bitmap_get_ny(bitmap)}});
  }
  mtmd_input_chunks* chunks = L.mtmd_input_chunks_init();
  const mtmd_input_text input{text.c_str(), text.size(), strip_bos, /*parse_special=*/true};
  std::vector<const mtmd_bitmap*> inputs(bitmaps.begin(), bitmaps.end());
  if (const int32_t rc = L.mtmd_tokenize(mctx, chunks, &input, inputs.data(), inputs.size()); rc != 0)
    die("mtmd_tokenize failed on '" + name + "' (" + std::to_string(rc) + ": 1 is a marker/image count mismatch)");

  const std::vector<llama_token> soft = tokenize(L, vocab, "<image_soft_token>", false);
  if (soft.size() != 1) die("the text model has no <image_soft_token>");
  std::vector<llama_token> prompt;
  bool non_causal = false;
  for (size_t i = 0; i < L.mtmd_input_chunks_size(chunks); ++i) {
    const mtmd_input_chunk* chunk = L.mtmd_input_chunks_get(chunks, i);
    if (L.mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
      size_t n = 0;
      const llama_token* ids = L.mtmd_input_chunk_get_tokens_text(chunk, &n);
      prompt.insert(prompt.end(), ids, ids + n);
    } else {
      prompt.insert(prompt.end(), L.mtmd_input_chunk_get_n_tokens(chunk), soft[0]);
      non_causal = L.mtmd_decode_use_non_causal(mctx, chunk);
    }
  }
  const int n_predict = p.value("n_predict", 32);
  if (int(prompt.size()) + n_predict > n_ctx) die("prompt '" + name + "' does not fit n_ctx " + std::to_string(n_ctx));
  const auto prefill = [&] {
    llama_pos n_past = 0;
    // One batch for the whole prompt, so an image is always decoded in one piece (its tokens attend
    // to each other both ways only within a batch).
    if (L.mtmd_helper_eval_chunks(mctx, ctx, chunks, 0, 0, n_ctx, true, &n_past) != 0)
      die("mtmd_helper_eval_chunks failed on '" + name + "'");
  };
  json result = {{"name", name}, {"prompt_tokens", prompt},
                 {"steps", generate(L, ctx, vocab, prefill, n_predict, n_top)},
                 {"images", images}, {"non_causal", non_causal}};
  L.mtmd_input_chunks_free(chunks);
  for (mtmd_bitmap* bitmap : bitmaps) L.mtmd_bitmap_free(bitmap);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string addon = LLAMA_NODE_ADDON, request_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--addon" && i + 1 < argc) addon = argv[++i];
    else if (request_path.empty() && arg.rfind("--", 0) != 0) request_path = arg;
    else die("usage: llama_reference [--addon PATH/index.node] REQUEST.json");
  }
  if (request_path.empty()) die("usage: llama_reference [--addon PATH/index.node] REQUEST.json");
  std::ifstream in(request_path);
  if (!in) die("cannot open " + request_path);
  const json request = json::parse(in, nullptr, false);
  if (request.is_discarded() || !request.contains("gguf")) die(request_path + ": expected a JSON object with \"gguf\"");

  const Llama L(addon);
  L.llama_backend_init();
  const bool verbose = std::getenv("LLAMA_REFERENCE_VERBOSE") != nullptr;
  if (!verbose) {
    L.llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    L.mtmd_helper_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  }

  const std::string gguf = request["gguf"].get<std::string>();
  llama_model_params mp = L.llama_model_default_params();
  llama_model* model = L.llama_model_load_from_file(gguf.c_str(), mp);
  if (!model) die("llama.cpp could not load " + gguf + " (set LLAMA_REFERENCE_VERBOSE=1 for its log)");
  const llama_vocab* vocab = L.llama_model_get_vocab(model);

  const int n_ctx = request.value("n_ctx", 512);
  const int n_threads = request.value("n_threads", 2);
  llama_context_params cp = L.llama_context_default_params();
  cp.n_ctx = uint32_t(n_ctx);
  cp.n_batch = cp.n_ubatch = uint32_t(n_ctx);  // a prompt is one batch
  cp.n_threads = cp.n_threads_batch = n_threads;
  cp.type_k = cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = L.llama_init_from_model(model, cp);
  if (!ctx) die("llama.cpp could not create a context of " + std::to_string(n_ctx) + " tokens");

  mtmd_context* mctx = nullptr;
  if (request.contains("mmproj")) {
    const std::string mmproj = request["mmproj"].get<std::string>();
    mtmd_context_params mtp = L.mtmd_context_params_default();
    mtp.use_gpu = false;
    mtp.print_timings = false;
    mtp.n_threads = n_threads;
    mtp.media_marker = L.mtmd_default_marker();
    mtp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // plain f32 attention in the vision tower too
    mtp.warmup = false;
    mctx = L.mtmd_init_from_file(mmproj.c_str(), model, mtp);
    if (!mctx || !L.mtmd_support_vision(mctx))
      die("llama.cpp's mtmd could not load " + mmproj + " as a vision projector (set LLAMA_REFERENCE_VERBOSE=1)");
  }

  const bool add_bos = L.llama_vocab_get_add_bos(vocab);
  const int n_top = request.value("n_top", 5);
  json result = {{"n_vocab", L.llama_vocab_n_tokens(vocab)}, {"add_bos", add_bos}, {"prompts", json::array()},
                 {"tokenized", json::array()}, {"media_marker", L.mtmd_default_marker()}};
  for (const json& p : request.value("prompts", json::array())) {
    if (!p.contains("images")) {
      result["prompts"].push_back(run_text_prompt(L, ctx, vocab, p, add_bos, n_ctx, n_top));
      continue;
    }
    if (!mctx) die("prompt '" + p.value("name", "") + "' has images but the request names no \"mmproj\"");
    result["prompts"].push_back(run_image_prompt(L, ctx, mctx, vocab, p, add_bos, n_ctx, n_top));
  }
  for (const json& t : request.value("texts", json::array()))
    result["tokenized"].push_back(tokenize(L, vocab, t.get<std::string>(), false));

  if (mctx) L.mtmd_free(mctx);
  L.llama_free(ctx);
  L.llama_model_free(model);
  std::cout << result.dump() << "\n";
  return 0;
}
