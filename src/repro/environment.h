// The machine a result comes from, as far as it can matter: the engine and how it was built, the CPU and
// the kernel set chosen for it, the libraries loaded and the OS. `medlab env --write-lock` records it in a
// lock file; `--check` compares a lock with this machine and says which differences can change results.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/library_versions.h"

namespace medlab {

struct Environment {
  std::string engine_version, engine_commit;            // build_info()
  std::string compiler, compile_flags, build_type;      // build_info()
  std::string cpu_model;                                // /proc/cpuinfo's "model name"
  int logical_cores = 0;                                // processors the OS shows
  std::vector<std::string> cpu_features;                // cpu_features(): what the kernel choice saw
  std::string isa;                                      // the kernel set best_kernels() chose
  int threads = 0;                                      // the --threads default of run, bench and serve
  LibraryVersions libraries;                            // name -> version, as loaded
  std::string os_name, kernel_release, glibc_version;  // /etc/os-release PRETTY_NAME, uname -r, glibc
};

// This machine. `higher_libraries` adds the libraries of layers above this one (the HTTP server, the CLI parser).
Environment collect_environment(const LibraryVersions& higher_libraries = {});

// {"engine": {...}, "build": {...}, "cpu": {...}, "kernels": {...}, "threads", "libraries": {...}, "os": {...}}
nlohmann::ordered_json environment_json(const Environment& env);
// The inverse of environment_json; an error names `source` and the field that is missing or of the wrong type.
Environment environment_from_json(const nlohmann::ordered_json& j, const std::string& source);

// A lock file is environment_json, pretty-printed: the same machine writes the same bytes.
void write_environment_lock(const Environment& env, const std::string& path);
Environment read_environment_lock(const std::string& path);

struct EnvironmentDifference {
  std::string field;          // "kernels.isa", "libraries.libpng"
  std::string locked, here;   // "" where that side has no such entry
  bool changes_results;       // false: speed or bookkeeping only
  std::string advice;         // what the difference means and what to do about it
};

// Every field where this machine (`here`) differs from the lock, in environment_json's order.
std::vector<EnvironmentDifference> check_environment(const Environment& lock, const Environment& here);

// "kernels.isa: lock avx512, here avx2 (can change results): <advice>"
std::string difference_line(const EnvironmentDifference& difference);

}  // namespace medlab
