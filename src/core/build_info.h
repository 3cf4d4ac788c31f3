// What this binary is: its version, the commit it was built from, the compiler and flags. Results and
// environment locks carry these so that a run can be tied to the exact engine that produced it.
#pragma once

#include <string>

namespace medlab {

struct BuildInfo {
  std::string version;         // "0.1.0"
  std::string git_commit;      // full hash, "-dirty" appended for uncommitted changes; "unknown" outside git
  std::string compiler;        // "GNU 12.2.0"
  std::string compile_flags;   // the C++ flags of this build type
  std::string build_type;      // "Release"
};

const BuildInfo& build_info();

// "medlab 0.1.0 (commit 5cb98d6d122b)": for --version and logs.
std::string engine_name();

}  // namespace medlab
