// Metrics: histogram buckets are cumulative with +Inf, counters follow finished requests, and
// the exposition text has a HELP/TYPE header for every family and well-formed sample lines.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "server/metrics.h"

namespace dspark::server {
namespace {

// The value of the first sample line starting with `prefix`; NaN when absent.
double sample(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return std::nan("");
}

// `name{labels} value` with a metric name, balanced label braces and a number.
bool well_formed_sample(const std::string& line) {
  size_t i = 0;
  auto name_char = [](char c, bool first) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
           (!first && std::isdigit(static_cast<unsigned char>(c)));
  };
  if (line.empty() || !name_char(line[0], true)) return false;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i < line.size() && line[i] == '{') {
    const size_t close = line.find('}', i);
    if (close == std::string::npos) return false;
    i = close + 1;
  }
  if (i >= line.size() || line[i] != ' ') return false;
  const std::string value = line.substr(i + 1);
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return true;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  return !value.empty() && *end == '\0';
}

TEST(Metrics, HistogramIsCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: le="0.1"
  h.observe(0.5);
  h.observe(7.0);
  std::string out;
  h.render("x", "m=\"a\"", &out);
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"0.10000000000000001\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"+Inf\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_sum{m=\"a\"} 7.6500000000000004\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_count{m=\"a\"} 4\n"), std::string::npos) << out;
}

TEST(Metrics, RecordsRequestsAndRendersEngineGauges) {
  Metrics m;
  RequestRecord r;
  r.final.reason = engine::FinishReason::kStop;
  r.final.n_prompt_tokens = 10;
  r.final.n_completion_tokens = 5;
  r.final.timings.ttft_s = 0.02;
  r.final.timings.decode_s = 0.04;
  r.e2e_s = 0.07;
  m.record_request(r);
  r.final.reason = engine::FinishReason::kAbort;
  m.record_request(r);
  m.record_inter_token(0.02, 2);
  m.record_http_status(200);
  m.record_http_status(429);
  engine::EngineStats stats;
  stats.sched.n_running = 3;
  stats.sched.kv_usage = 0.25;
  stats.spec.n_drafted = 8;
  stats.spec.n_accepted = 5;
  stats.spec.accepted_at = {4, 1};
  const std::string text = m.render(stats, 2, "tiny\"model");
  const std::string l = "{model_name=\"tiny\\\"model\"";
  EXPECT_EQ(sample(text, "dspark:num_requests_running" + l), 3);
  EXPECT_EQ(sample(text, "dspark:num_requests_waiting" + l), 2);
  EXPECT_EQ(sample(text, "dspark:kv_cache_usage_perc" + l), 0.25);
  EXPECT_EQ(sample(text, "dspark:prompt_tokens_total" + l), 20);
  EXPECT_EQ(sample(text, "dspark:generation_tokens_total" + l), 10);
  EXPECT_EQ(sample(text, "dspark:request_success_total" + l + ",finished_reason=\"stop\"}"), 1);
  EXPECT_EQ(sample(text, "dspark:request_success_total" + l + ",finished_reason=\"abort\"}"), 1);
  EXPECT_EQ(sample(text, "dspark:http_requests_total" + l + ",code=\"429\"}"), 1);
  EXPECT_EQ(sample(text, "dspark:spec_decode_num_drafted_tokens_total" + l), 8);
  EXPECT_EQ(sample(text, "dspark:spec_decode_num_accepted_tokens_total" + l), 5);
  EXPECT_EQ(sample(text, "dspark:spec_decode_num_accepted_tokens_per_pos" + l + ",position=\"1\"}"),
            1);
  EXPECT_TRUE(std::isnan(sample(text, "dspark:spec_decode_mean_depth")))
      << "no controller gauges without speculation";
  stats.spec_method = engine::SpecMethod::kNgram;
  stats.spec_mean_depth = 1.5;
  stats.spec_calibration_ece = 0.125;
  const std::string spec_text = m.render(stats, 2, "tiny\"model");
  EXPECT_EQ(sample(spec_text, "dspark:spec_decode_mean_depth" + l + ",drafter=\"ngram\"}"), 1.5);
  EXPECT_EQ(sample(spec_text, "dspark:spec_decode_calibration_ece" + l + ",drafter=\"ngram\"}"),
            0.125);
  EXPECT_EQ(sample(text, "dspark:time_to_first_token_seconds_count" + l), 2);
  EXPECT_EQ(sample(text, "dspark:inter_token_latency_seconds_count" + l), 2);
  EXPECT_EQ(sample(text, "dspark:e2e_request_latency_seconds_count" + l), 2);

  // Every line is a comment or `name{labels} value`, and every family has HELP and TYPE.
  std::istringstream in(spec_text);
  std::string line, last_type;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      last_type = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    EXPECT_TRUE(well_formed_sample(line)) << line;
    EXPECT_EQ(line.rfind(last_type, 0), 0u) << line << " outside its family " << last_type;
  }
}

}  // namespace
}  // namespace dspark::server
