// medlab env: what this machine would run a model with (engine, build, CPU and kernels, libraries, OS), and
// a lock file of it: --write-lock records it, --check says how this machine differs and what to do about it.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command_support.h"
#include "cli/commands.h"
#include "core/error.h"
#include "repro/environment.h"

namespace medlab::cli {
namespace {

struct Options {
  bool json = false;
  std::string write_lock;
  std::string check;
};

void print_table(const Environment& env) {
  const auto row = [](const char* name, const std::string& value) { std::printf("%-10s %s\n", name, value.c_str()); };
  row("engine", "medlab " + env.engine_version + ", commit " + env.engine_commit);
  row("build", env.compiler + ", " + env.build_type + ", flags " + env.compile_flags);
  row("cpu", env.cpu_model + ", " + std::to_string(env.logical_cores) + " logical cores");
  std::string features;
  for (const std::string& f : env.cpu_features) features += " " + f;
  row("", "features:" + (features.empty() ? std::string(" none the kernels use") : features));
  row("kernels", env.isa + " (the best this CPU runs)");
  row("threads", std::to_string(env.threads) + " (the --threads default)");
  const char* label = "libraries";
  for (const auto& [name, version] : env.libraries) {
    row(label, name + " " + version);
    label = "";
  }
  row("os", env.os_name + ", Linux " + env.kernel_release + ", glibc " + env.glibc_version);
}

void check(const std::string& path) {
  const Environment lock = read_environment_lock(path);
  int changing = 0, informational = 0;
  for (const EnvironmentDifference& d : check_environment(lock, this_machine())) {
    ++(d.changes_results ? changing : informational);
    std::printf("%s\n", difference_line(d).c_str());
  }
  if (changing > 0) {
    std::fflush(stdout);
    fail(path, ": ", changing, changing == 1 ? " difference" : " differences", " can change results");
  }
  if (informational > 0) {
    std::printf("env matches the lock in everything that can change results (%d informational %s)\n", informational,
                informational == 1 ? "difference" : "differences");
  } else {
    std::printf("env matches the lock\n");
  }
}

}  // namespace

void register_env(CLI::App& app) {
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "env", "What this machine runs models with: engine, build, CPU and kernels, libraries, OS; lock files of it");
  CLI::Option* json = cmd->add_flag("--json", options->json, "Print it as JSON (what --write-lock writes)");
  CLI::Option* write = cmd->add_option("--write-lock", options->write_lock, "Write it to this lock file");
  CLI::Option* check_option = cmd->add_option(
      "--check", options->check,
      "Compare this machine with a lock file: one line per difference, with what to do about it; exit code 1 "
      "if any can change results");
  json->excludes(write)->excludes(check_option);
  write->excludes(check_option);
  cmd->callback([options] {
    if (!options->check.empty()) return check(options->check);
    const Environment env = this_machine();
    if (!options->write_lock.empty()) {
      write_environment_lock(env, options->write_lock);
      std::printf("wrote %s\n", options->write_lock.c_str());
    } else if (options->json) {
      std::cout << environment_json(env).dump(2) << '\n';
    } else {
      print_table(env);
    }
  });
}

}  // namespace medlab::cli
