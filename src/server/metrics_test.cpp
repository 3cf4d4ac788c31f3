#include <gtest/gtest.h>

#include "server/metrics.h"

namespace medlab::server {
namespace {

bool has_line(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

TEST(Metrics, CountersGaugesAndHistogramsInPrometheusText) {
  Metrics m;
  const auto t0 = Metrics::Clock::now();
  m.record_request("/api/predict", 200, 0.3);
  m.record_request("/api/predict", 200, 2.0);
  m.record_request("/api/predict", 400, 0.01);
  m.record_stream_error();
  m.record_first_token(0.2);
  m.record_tokens(50, t0);
  m.record_tokens(30, t0 + std::chrono::seconds(5));
  const std::string text = m.render({.queue_depth = 2, .active = 1, .prompt_tokens = 70, .generated_tokens = 80},
                                    t0 + std::chrono::seconds(5));
  EXPECT_TRUE(has_line(text, "medlab_requests_total{endpoint=\"/api/predict\",code=\"200\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "medlab_requests_total{endpoint=\"/api/predict\",code=\"400\"} 1"));
  EXPECT_TRUE(has_line(text, "medlab_errors_total 2"));
  EXPECT_TRUE(has_line(text, "medlab_queue_depth 2"));
  EXPECT_TRUE(has_line(text, "medlab_active_requests 1"));
  EXPECT_TRUE(has_line(text, "medlab_prompt_tokens_total 70"));
  EXPECT_TRUE(has_line(text, "medlab_generated_tokens_total 80"));
  // Cumulative buckets: 0.01 <= 0.05; 0.3 <= 0.5; 2.0 <= 2.5.
  EXPECT_TRUE(has_line(text, "medlab_request_duration_seconds_bucket{endpoint=\"/api/predict\",le=\"0.05\"} 1"));
  EXPECT_TRUE(has_line(text, "medlab_request_duration_seconds_bucket{endpoint=\"/api/predict\",le=\"0.5\"} 2"));
  EXPECT_TRUE(has_line(text, "medlab_request_duration_seconds_bucket{endpoint=\"/api/predict\",le=\"2.5\"} 3"));
  EXPECT_TRUE(has_line(text, "medlab_request_duration_seconds_bucket{endpoint=\"/api/predict\",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, "medlab_request_duration_seconds_count{endpoint=\"/api/predict\"} 3"));
  EXPECT_TRUE(has_line(text, "medlab_time_to_first_token_seconds_bucket{le=\"0.1\"} 0"));
  EXPECT_TRUE(has_line(text, "medlab_time_to_first_token_seconds_bucket{le=\"0.25\"} 1"));
  EXPECT_TRUE(has_line(text, "medlab_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(text, "medlab_decode_tokens_per_second 8"));  // 80 tokens in the last 10 s
  EXPECT_TRUE(has_line(text, "# TYPE medlab_request_duration_seconds histogram"));
}

TEST(Metrics, TokenRateForgetsOlderThanTenSeconds) {
  Metrics m;
  const auto t0 = Metrics::Clock::now();
  m.record_tokens(100, t0);
  m.record_tokens(20, t0 + std::chrono::seconds(8));
  EXPECT_TRUE(has_line(m.render({}, t0 + std::chrono::seconds(12)), "medlab_decode_tokens_per_second 2"));
  EXPECT_TRUE(has_line(m.render({}, t0 + std::chrono::seconds(30)), "medlab_decode_tokens_per_second 0"));
}

}  // namespace
}  // namespace medlab::server
