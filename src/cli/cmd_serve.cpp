// medlab serve: the model behind an HTTP API (JSON, OpenAI-compatible chat completions, Prometheus
// metrics) and the web UI, until SIGINT or SIGTERM.
#include <csignal>
#include <cstdio>
#include <thread>

#include <pthread.h>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/error.h"
#include "cli/command_support.h"
#include "repro/weights.h"
#include "runtime/scheduler.h"
#include "server/http_server.h"

namespace medlab::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string mmproj;
  std::string quant;
  AdapterArgs adapters;
  int parallel = 4;
  size_t queue = 32;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  int64_t ctx_size = 4096;
  int64_t max_body_mb = 64;
  std::string precision = "fast";
  int64_t time_limit_s = 600;
  server::ServerOptions server;
};

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.starts_with("127.");
}

std::string model_name(const LoadedModel& model) {
  const std::filesystem::path path = model.checkpoint.gguf() ? std::filesystem::path(model.checkpoint.gguf()->path())
                                                             : model.checkpoint.dir();
  const std::string name = path.filename().string();
  return name.empty() ? path.parent_path().filename().string() : name;
}

void serve(ServeOptions o) {
  if (!is_loopback(o.server.host) && o.server.api_key.empty())
    fail("serve: --host ", o.server.host, " is reachable from other machines; give --api-key too (or serve on 127.0.0.1)");
  o.server.max_body_bytes = size_t(o.max_body_mb) << 20;
  o.server.time_limit = std::chrono::seconds(o.time_limit_s);
  // Every waiting or generating request holds a connection thread; a few more keep health and metrics answering.
  o.server.http_threads = o.parallel + int(o.queue) + 8;

  const std::unique_ptr<LoadedModel> model = load_cli_model(o.model, o.mmproj, o.quant, o.adapters);
  const WeightHashes hashes = hash_weights(model->checkpoint, {}, weight_hash_cache());

  // From here on SIGINT and SIGTERM wait for the thread below: every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not the end of the server

  const KernelTable& kernels = best_kernels();
  ThreadPool pool(o.threads);
  Scheduler::Options scheduler_options;
  scheduler_options.parallel = o.parallel;
  scheduler_options.max_queue = o.queue;
  scheduler_options.n_ctx = std::min(o.ctx_size, model->decoder.config().max_position_embeddings);
  scheduler_options.precision = o.precision == "exact" ? Precision::Exact : Precision::Fast;
  Scheduler scheduler(*model, pool, kernels, scheduler_options);

  server::ServerState state{*model, scheduler, o.server, model_name(*model), hashes.model_sha256, hashes.adapters,
                            isa_name(kernels.isa), o.precision, "medlab-" + build_info().version + "-" + isa_name(kernels.isa)};
  server::HttpServer http(state);
  const int port = http.bind();
  std::printf("medlab serve: listening on http://%s:%d\n", o.server.host.c_str(), port);
  std::fflush(stdout);
  std::fprintf(stderr, "medlab: research software, not for diagnosis. Ctrl-C stops.\n");

  std::thread watcher([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    std::fprintf(stderr, "medlab: stopping (%s)\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    state.stopping = true;
    http.stop();
  });
  http.run();
  watcher.join();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over HTTP: a JSON API, OpenAI-compatible chat completions, Prometheus metrics and a web UI "
               "(docs/API.md). Research software, not for diagnosis.");
  cmd->add_option("-m,--model", o->model, "Model folder (Hugging Face layout), a cached Hugging Face id, or a llama.cpp "
                  "gemma3 .gguf file")->required();
  cmd->add_option("--mmproj", o->mmproj, "With a .gguf model: its llama.cpp vision projector (mmproj .gguf), for images")
      ->check(CLI::ExistingFile);
  cmd->add_option("--quant", o->quant, "Quantize the decoder's matrices at load: q8_0, q4_0, q4_k, q5_k, q6_k or nf4")
      ->check(CLI::IsMember({"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "nf4"}));
  add_adapter_options(*cmd, o->adapters);
  cmd->add_option("--host", o->server.host, "Address to listen on; anything but loopback needs --api-key")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port to listen on; 0 picks a free one (printed when ready)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o->server.api_key, "Require \"Authorization: Bearer KEY\" on /api/* (except /api/health), "
                  "/v1/* and /metrics");
  cmd->add_option("--parallel", o->parallel, "Requests generating at once (each holds a KV cache of --ctx-size tokens)")
      ->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--queue", o->queue, "Requests that may wait for a slot; beyond this the server answers 503")
      ->capture_default_str()->check(CLI::Range(0, 10000));
  cmd->add_option("-t,--threads", o->threads, "Compute threads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx_size, "Context per request in tokens (prompt + answer), at most the model's")
      ->capture_default_str()->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--max-body-mb", o->max_body_mb, "Largest request body in MiB (images arrive base64 inside it); larger: 413")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--max-pixels", o->server.max_pixels, "Largest image in pixels, checked from its header before decoding; larger: 413")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-images", o->server.limits.max_images, "Most images one chat request may carry; more: 400")
      ->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--max-new-tokens-limit", o->server.limits.max_new_tokens, "Most tokens one request may ask to generate")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--time-limit-s", o->time_limit_s, "Seconds a request may take from submission; then it stops with "
                  "stop_reason \"time_limit\"")->capture_default_str()->check(CLI::Range(1, 86400));
  cmd->add_option("--cors-origin", o->server.cors_origin, "Allow browser pages from this origin (e.g. http://localhost:3000) "
                  "to call the API; no CORS headers without it");
  cmd->add_option("--precision", o->precision, "fast (as llama.cpp: int8 activations against quantized weights, bf16 "
                  "against bf16 weights; vision attention in bf16 with AVX512-BF16) or exact (f32 throughout)")->capture_default_str()->check(CLI::IsMember({"exact", "fast"}));
  cmd->add_option("--access-log", o->server.access_log, "Append one line per request (time, method, path, status, ms, "
                  "bytes; never questions or images) to this file, or - for stdout");
  cmd->callback([o] { serve(*o); });
}

}  // namespace medlab::cli
