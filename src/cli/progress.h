// Progress of long work on stderr: a bar redrawn in place on a terminal; elsewhere (logs, Slurm) a plain line
// every 30 seconds, so that a log stays readable.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace medlab::cli {

// "42s", "6m54s", "2h05m".
std::string duration_text(double seconds);

class Progress {
 public:
  // `what`: the command, as lines begin ("medlab batch").
  Progress(std::string what, size_t total);

  void row_done(bool error);
  size_t errors() const { return errors_; }
  double seconds() const;
  bool terminal() const { return terminal_; }

 private:
  std::string what_;
  size_t total_, done_ = 0, errors_ = 0;
  bool terminal_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double last_line_ = 0;
};

}  // namespace medlab::cli
