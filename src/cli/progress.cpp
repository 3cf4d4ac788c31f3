#include "cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace medlab::cli {

std::string duration_text(double seconds) {
  char text[32];
  const long s = long(seconds + 0.5);
  if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%lds", s);
  return text;
}

Progress::Progress(std::string what, size_t total)
    : what_(std::move(what)), total_(total), terminal_(::isatty(STDERR_FILENO)) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::row_done(bool error) {
  ++done_;
  errors_ += error;
  const double elapsed = seconds();
  if (!terminal_ && done_ != total_ && elapsed - last_line_ < 30) return;
  last_line_ = elapsed;
  const double rate = double(done_) / std::max(elapsed, 1e-9);
  const std::string eta = duration_text(double(total_ - done_) / std::max(rate, 1e-9));
  if (terminal_) {
    const size_t width = 30, filled = width * done_ / std::max<size_t>(total_, 1);
    std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.2f pairs/s  ETA %s  errors %zu ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done_, total_, rate, eta.c_str(), errors_);
    if (done_ == total_) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%s: %zu/%zu pairs, %.2f pairs/s, ETA %s, %zu errors\n", what_.c_str(), done_, total_, rate,
                 eta.c_str(), errors_);
  }
}

}  // namespace medlab::cli
