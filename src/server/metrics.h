// Server metrics in the Prometheus text exposition format, named as vLLM names them under the
// "dspark:" prefix: request counters by finish reason, latency histograms (TTFT, inter-token,
// end-to-end, queue), token counters, and gauges read from the engine (running and waiting
// requests, KV usage, prefix cache and speculative decoding counters).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dspark/engine.h"

namespace dspark::server {

// A cumulative histogram over fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the _bucket/_sum/_count lines of `name`; labels: `key="value",...` or empty.
  void render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  std::vector<double> bounds_;   // [n_buckets] ascending upper bounds; +Inf is implicit
  std::vector<int64_t> counts_;  // [n_buckets + 1] observations per bucket (not cumulative)
  double sum_ = 0.0;
  int64_t count_ = 0;
};

// What the server records per finished engine request.
struct RequestRecord {
  engine::FinalRecord final;
  double e2e_s = 0.0;
};

class Metrics {
 public:
  Metrics();
  void record_request(const RequestRecord& record);
  // One gap between streamed events that carried n_tokens new tokens.
  void record_inter_token(double gap_s, int64_t n_tokens);
  void record_http_status(int status);
  // Engine gauges come from `stats`; everything is rendered as one exposition text.
  std::string render(const engine::EngineStats& stats, int64_t queued_requests,
                     const std::string& model_name) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> finished_;  // finish reason -> requests
  std::map<int, int64_t> http_status_;       // HTTP status -> responses
  int64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  Histogram ttft_, itl_, tpot_, e2e_, queue_;
  Histogram prompt_len_, generation_len_;
};

}  // namespace dspark::server
