// Prometheus metrics (text exposition format 0.0.4): request counts, latencies, tokens, queue and load.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace medlab::server {

// A cumulative histogram with fixed upper bounds, as Prometheus expects.
struct Histogram {
  explicit Histogram(std::vector<double> bounds) : bounds(std::move(bounds)), counts(this->bounds.size()) {}
  void observe(double value);
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // observations <= bounds[i] (not yet cumulative)
  uint64_t count = 0;
  double sum = 0;
};

class Metrics {
 public:
  using Clock = std::chrono::steady_clock;

  // One answered request; codes >= 400 also count as errors.
  void record_request(const std::string& endpoint, int code, double seconds);
  // A failure after a stream's 200 was sent (its status can no longer say so).
  void record_stream_error();
  void record_first_token(double seconds);
  // Tokens a request produced since its last update, at `now`: the tokens/s gauge covers the last 10 s.
  void record_tokens(uint64_t tokens, Clock::time_point now);

  // What the scheduler knows.
  struct Gauges {
    size_t queue_depth = 0, active = 0;
    uint64_t prompt_tokens = 0, generated_tokens = 0;
  };
  std::string render(const Gauges& gauges, Clock::time_point now);

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t errors_ = 0;
  std::map<std::string, Histogram> durations_;
  Histogram first_token_{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  std::deque<std::pair<Clock::time_point, uint64_t>> recent_tokens_;
};

}  // namespace medlab::server
