#include "server/metrics.h"

#include <sstream>

namespace medlab::server {
namespace {

constexpr auto kRateWindow = std::chrono::seconds(10);

void write_histogram(std::ostringstream& out, const std::string& name, const std::string& labels, const Histogram& h) {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    out << name << "_bucket{" << labels << sep << "le=\"" << h.bounds[i] << "\"} " << cumulative << "\n";
  }
  out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count << "\n";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out << name << "_sum" << braces << " " << h.sum << "\n" << name << "_count" << braces << " " << h.count << "\n";
}

}  // namespace

void Histogram::observe(double value) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) {
      ++counts[i];
      break;
    }
  }
  ++count;
  sum += value;
}

void Metrics::record_request(const std::string& endpoint, int code, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, code}];
  if (code >= 400) ++errors_;
  durations_.try_emplace(endpoint, std::vector<double>{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600})
      .first->second.observe(seconds);
}

void Metrics::record_stream_error() {
  std::lock_guard lock(mutex_);
  ++errors_;
}

void Metrics::record_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  first_token_.observe(seconds);
}

void Metrics::record_tokens(uint64_t tokens, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  recent_tokens_.emplace_back(now, tokens);
  while (!recent_tokens_.empty() && recent_tokens_.front().first < now - kRateWindow) recent_tokens_.pop_front();
}

std::string Metrics::render(const Gauges& gauges, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  while (!recent_tokens_.empty() && recent_tokens_.front().first < now - kRateWindow) recent_tokens_.pop_front();
  uint64_t recent = 0;
  for (const auto& [when, tokens] : recent_tokens_) recent += tokens;

  std::ostringstream out;
  out << "# HELP medlab_requests_total HTTP requests answered, by endpoint and status code.\n"
      << "# TYPE medlab_requests_total counter\n";
  for (const auto& [key, count] : requests_)
    out << "medlab_requests_total{endpoint=\"" << key.first << "\",code=\"" << key.second << "\"} " << count << "\n";
  out << "# HELP medlab_errors_total Requests that failed: answered with status 400 or more, or failed while streaming.\n"
      << "# TYPE medlab_errors_total counter\nmedlab_errors_total " << errors_ << "\n"
      << "# HELP medlab_queue_depth Requests waiting for a generation slot.\n"
      << "# TYPE medlab_queue_depth gauge\nmedlab_queue_depth " << gauges.queue_depth << "\n"
      << "# HELP medlab_active_requests Requests holding a generation slot.\n"
      << "# TYPE medlab_active_requests gauge\nmedlab_active_requests " << gauges.active << "\n"
      << "# HELP medlab_prompt_tokens_total Prompt tokens processed.\n"
      << "# TYPE medlab_prompt_tokens_total counter\nmedlab_prompt_tokens_total " << gauges.prompt_tokens << "\n"
      << "# HELP medlab_generated_tokens_total Tokens generated.\n"
      << "# TYPE medlab_generated_tokens_total counter\nmedlab_generated_tokens_total " << gauges.generated_tokens << "\n"
      << "# HELP medlab_request_duration_seconds Time from receiving a request to its last byte, by endpoint.\n"
      << "# TYPE medlab_request_duration_seconds histogram\n";
  for (const auto& [endpoint, histogram] : durations_)
    write_histogram(out, "medlab_request_duration_seconds", "endpoint=\"" + endpoint + "\"", histogram);
  out << "# HELP medlab_time_to_first_token_seconds Time from receiving a generation request to its first token.\n"
      << "# TYPE medlab_time_to_first_token_seconds histogram\n";
  write_histogram(out, "medlab_time_to_first_token_seconds", "", first_token_);
  out << "# HELP medlab_decode_tokens_per_second Tokens generated per second over the last 10 seconds, all requests.\n"
      << "# TYPE medlab_decode_tokens_per_second gauge\nmedlab_decode_tokens_per_second "
      << double(recent) / std::chrono::duration<double>(kRateWindow).count() << "\n";
  return out.str();
}

}  // namespace medlab::server
