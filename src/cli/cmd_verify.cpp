// medlab verify: is this still the model that was locked? The SHA-256 of every weight file and a behavioural
// fingerprint (repro/fingerprint.h) against a weights.lock, or a new lock written from the model.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/command_support.h"
#include "core/error.h"
#include "repro/weights_lock.h"
#include "runtime/session.h"

namespace medlab::cli {
namespace {

struct VerifyOptions {
  std::string model;
  std::string mmproj;
  AdapterArgs adapters;
  std::string lock;
  std::string write_lock;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::string isa;
  std::optional<double> tolerance;
  bool json = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Hashing a 4B model reads 8.6 GB: say how far it is, in place on a terminal, every tenth otherwise.
void show_progress(uint64_t done, uint64_t total) {
  static int last_tenth = -1;
  const bool terminal = ::isatty(::fileno(stderr));
  const int tenth = total ? int(10 * done / total) : 10;
  if (!terminal && tenth == last_tenth) return;
  last_tenth = tenth;
  std::fprintf(stderr, "%smedlab: hashing weights: %.2f of %.2f GB%s", terminal ? "\r" : "", double(done) / 1e9,
               double(total) / 1e9, terminal && done < total ? "" : "\n");
}

// The model as it is now, in the lock's terms: its files' hashes and its fingerprint.
WeightsLock current_state(const VerifyOptions& o, double tolerance) {
  const KernelTable& kernels = o.isa.empty() ? best_kernels() : kernels_for(o.isa);
  const std::unique_ptr<LoadedModel> model = load_cli_model(o.model, o.mmproj, "", o.adapters);

  auto start = std::chrono::steady_clock::now();
  const WeightHashes hashes = hash_weights(model->checkpoint, show_progress);
  uint64_t bytes = 0;
  for (const WeightFileHash& f : hashes.files) bytes += f.size;
  std::fprintf(stderr, "medlab: hashed %zu weight files (%.2f GB) in %.1f s\n", hashes.files.size(), double(bytes) / 1e9,
               seconds_since(start));

  start = std::chrono::steady_clock::now();
  ThreadPool pool(o.threads);
  const Fingerprint fingerprint = behavioural_fingerprint(*model, pool, kernels);
  std::fprintf(stderr, "medlab: fingerprint (%s kernels, %d threads) in %.1f s\n", isa_name(kernels.isa), o.threads,
               seconds_since(start));
  return make_lock(hashes, model->checkpoint.dir(), fingerprint, tolerance);
}

void write(const VerifyOptions& o) {
  const WeightsLock lock = current_state(o, o.tolerance.value_or(kDefaultFingerprintTolerance));
  if (!std::isfinite(lock.fingerprint.top3_logit_l2))
    fail(o.model, ": the fingerprint's logits are not finite (", lock.fingerprint.top3_logit_l2,
         "): damaged weights; no lock written");
  write_lock(lock, o.write_lock);
  if (o.json) {
    std::cout << lock_text(lock);
    return;
  }
  std::printf("wrote %s: %zu weight files, model sha256 %s\n", o.write_lock.c_str(), lock.files.size(),
              lock.model_sha256.c_str());
  for (const AdapterHash& a : lock.adapters)
    std::printf("adapter %s: sha256 %s, scale %g, %s\n", a.name.c_str(), a.sha256.c_str(), double(a.scale),
                a.merged ? "merged" : "runtime");
  std::printf("fingerprint: top3_logit_l2 %s, top20_ids sha256 %s (tolerance %g)\n",
              six_decimals(lock.fingerprint.top3_logit_l2).c_str(), lock.fingerprint.top20_ids_sha256.c_str(), lock.tolerance);
}

void verify(const VerifyOptions& o) {
  const WeightsLock locked = read_lock(o.lock);  // before minutes of hashing, in case the lock is unusable
  const double tolerance = o.tolerance.value_or(locked.tolerance);
  WeightsLock found;
  try {
    found = current_state(o, tolerance);
  } catch (const Error& e) {  // a damaged header or a missing shard: the loader's message says which
    fail("verify: FAIL: the model does not load, so it cannot match ", o.lock, ": ", e.what());
  }
  const std::vector<LockCheck> checks = compare_lock(locked, found, tolerance);
  const std::vector<std::string> differences = lock_differences(checks);
  if (o.json) {
    nlohmann::ordered_json out = {{"lock", o.lock}, {"result", differences.empty() ? "PASS" : "FAIL"},
                                  {"checks", nlohmann::ordered_json::array()}, {"differences", differences}};
    for (const LockCheck& c : checks) out["checks"].push_back({{"subject", c.subject}, {"ok", c.ok}, {"detail", c.detail}});
    std::cout << out.dump(2) << "\n";
  } else {
    for (const LockCheck& c : checks)
      std::printf("%s ... %s\n", c.subject.c_str(),
                  c.ok ? (c.detail.empty() ? "ok" : "ok (" + c.detail + ")").c_str() : c.detail.c_str());
    if (differences.empty()) std::printf("PASS\n");
  }
  std::fflush(stdout);
  if (!differences.empty()) fail("verify: FAIL: ", differences.size(), " difference", differences.size() == 1 ? "" : "s",
                                 " from ", o.lock);
}

}  // namespace

void register_verify(CLI::App& app) {
  auto o = std::make_shared<VerifyOptions>();
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Check a model against a weights.lock: the SHA-256 of every weight file and a behavioural fingerprint (a\n"
      "fixed synthetic image and prompt through the whole model: the L2 norm of the top-3 first-step logits and\n"
      "a hash of the top-20 token ids). Prints each check, then PASS (exit 0) or what differs (exit 1).\n"
      "--write-lock writes the lock from a model you trust. With --lora, the adapters are applied before the\n"
      "fingerprint and the lock holds each one's SHA-256, scale and whether it was merged.");
  cmd->add_option("-m,--model", o->model, "Model folder (Hugging Face layout), cached Hugging Face id or .gguf file")->required();
  cmd->add_option("--mmproj", o->mmproj, "llama.cpp projector file for a .gguf model's vision tower")->check(CLI::ExistingFile);
  add_adapter_options(*cmd, o->adapters);
  auto* lock = cmd->add_option("--lock", o->lock, "The weights.lock to check the model against");
  auto* write_lock = cmd->add_option("--write-lock", o->write_lock, "Write the model's weights.lock here instead");
  lock->excludes(write_lock);
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--isa", o->isa, "Force a kernel set: scalar, avx2, avx512 or amx (default: the best this CPU runs)");
  cmd->add_option("--tolerance", o->tolerance,
                  "Largest relative difference of the top-3 logit L2 norm that still matches (default: the lock's, "
                  "written as 1e-4; kernel sets differ by about 2e-7)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print JSON: the checks and differences (with --write-lock: the lock)");
  cmd->callback([o, lock, write_lock] {
    if (lock->count() == 0 && write_lock->count() == 0) fail("verify: give --lock FILE to check, or --write-lock FILE to write one");
    if (write_lock->count() > 0)
      write(*o);
    else
      verify(*o);
  });
}

}  // namespace medlab::cli
