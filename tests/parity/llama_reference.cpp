// llama_reference: runs a GGUF through llama.cpp and prints what the parity test compares medlab with:
// the prompt's token ids, then at each greedy step the chosen token and the top-n log-probabilities,
// computed from llama.cpp's raw logits (log-softmax over the whole vocabulary).
//
// llama.cpp is the build inside @fugood/llama.node (tools/reference), the same library its JavaScript
// API drives; that API only reports probabilities after its samplers ran (temperature 0 makes them
// 1, 0, 0, ...), so this program loads the addon with dlopen and calls llama.cpp's C API directly.
//
//   llama_reference [--addon PATH/index.node] REQUEST.json > RESULT.json
//   request: {"gguf": path, "n_ctx": 512, "n_threads": 2, "n_top": 5,
//             "prompts": [{"name": ..., "text": ..., "n_predict": 32}], "texts": [strings to tokenize]}
//   result:  {"n_vocab": N, "add_bos": bool, "prompts": [{"name", "prompt_tokens": [ids],
//             "steps": [{"id", "token", "logprob", "top": [{"id", "token", "logprob"}]}]}],
//             "tokenized": [[ids] per text]}
//
// A prompt that starts with the BOS token's text is tokenized without it and with add_special, so
// llama.cpp adds BOS itself as its add_bos_token metadata says (checking that key too). Other text is
// tokenized with special tokens parsed ("<start_of_turn>" becomes one token), as llama.cpp's tools do.
// The KV cache is kept in f32 and flash attention off: the default f16 cache would add rounding that
// is llama.cpp's choice, not the model's.
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

// Greedy generation from `prompt`, recording the top `n_top` log-probabilities at each step.
json generate(const Llama& L, llama_context* ctx, const llama_vocab* vocab, std::vector<llama_token> prompt,
              int n_predict, int n_top) {
  const int32_t n_vocab = L.llama_vocab_n_tokens(vocab);
  L.llama_memory_clear(L.llama_get_memory(ctx), true);
  json steps = json::array();
  std::vector<llama_token> next = std::move(prompt);
  std::vector<double> logprob(static_cast<size_t>(n_vocab));
  std::vector<int32_t> order(static_cast<size_t>(n_vocab));
  for (int step = 0; step < n_predict; ++step) {
    if (L.llama_decode(ctx, L.llama_batch_get_one(next.data(), int32_t(next.size()))) != 0)
      die("llama_decode failed at step " + std::to_string(step) + " (is n_ctx large enough?)");
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
    const int32_t chosen = order[0];
    steps.push_back({{"id", chosen}, {"token", L.llama_vocab_get_text(vocab, chosen)},
                     {"logprob", logprob[size_t(chosen)]}, {"top", top}});
    next = {chosen};
  }
  return steps;
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
  if (!std::getenv("LLAMA_REFERENCE_VERBOSE")) L.llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);

  const std::string gguf = request["gguf"].get<std::string>();
  llama_model_params mp = L.llama_model_default_params();
  llama_model* model = L.llama_model_load_from_file(gguf.c_str(), mp);
  if (!model) die("llama.cpp could not load " + gguf + " (set LLAMA_REFERENCE_VERBOSE=1 for its log)");
  const llama_vocab* vocab = L.llama_model_get_vocab(model);

  const int n_ctx = request.value("n_ctx", 512);
  llama_context_params cp = L.llama_context_default_params();
  cp.n_ctx = uint32_t(n_ctx);
  cp.n_batch = cp.n_ubatch = uint32_t(n_ctx);  // a prompt is one batch
  cp.n_threads = cp.n_threads_batch = request.value("n_threads", 2);
  cp.type_k = cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = L.llama_init_from_model(model, cp);
  if (!ctx) die("llama.cpp could not create a context of " + std::to_string(n_ctx) + " tokens");

  const bool add_bos = L.llama_vocab_get_add_bos(vocab);
  const std::string bos_text = L.llama_vocab_get_text(vocab, L.llama_vocab_bos(vocab));
  const int n_top = request.value("n_top", 5);
  json result = {{"n_vocab", L.llama_vocab_n_tokens(vocab)}, {"add_bos", add_bos}, {"prompts", json::array()},
                 {"tokenized", json::array()}};
  for (const json& p : request.value("prompts", json::array())) {
    std::string text = p.at("text").get<std::string>();
    const bool strip_bos = add_bos && text.rfind(bos_text, 0) == 0;
    if (strip_bos) text.erase(0, bos_text.size());
    const std::vector<llama_token> prompt = tokenize(L, vocab, text, strip_bos);
    if (int(prompt.size()) + p.value("n_predict", 32) > n_ctx)
      die("prompt '" + p.value("name", "") + "' does not fit n_ctx " + std::to_string(n_ctx));
    result["prompts"].push_back({{"name", p.value("name", "")},
                                 {"prompt_tokens", prompt},
                                 {"steps", generate(L, ctx, vocab, prompt, p.value("n_predict", 32), n_top)}});
  }
  for (const json& t : request.value("texts", json::array()))
    result["tokenized"].push_back(tokenize(L, vocab, t.get<std::string>(), false));

  L.llama_free(ctx);
  L.llama_model_free(model);
  std::cout << result.dump() << "\n";
  return 0;
}
