// Prometheus exposition of the server and engine metrics.
#include "metrics.h"

#include <cstdio>

namespace dspark::server {

namespace {

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void header(std::string* out, const std::string& name, const char* type, const char* help) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

// Latency buckets in seconds; sub-millisecond steps matter on small models.
std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,
          0.75,  1.0,    2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0};
}

std::vector<double> token_buckets() {
  return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& labels, std::string* out) const {
  int64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? fmt(bounds_[i]) : "+Inf";
    *out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) +
            "\n";
  }
  const std::string close = labels.empty() ? "" : "{" + labels + "}";
  *out += name + "_sum" + close + " " + fmt(sum_) + "\n";
  *out += name + "_count" + close + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_(latency_buckets()),
      itl_(latency_buckets()),
      tpot_(latency_buckets()),
      e2e_(latency_buckets()),
      queue_(latency_buckets()),
      prompt_len_(token_buckets()),
      generation_len_(token_buckets()) {}

void Metrics::record_request(const RequestRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_[engine::finish_reason_name(r.final.reason)];
  prompt_tokens_ += r.final.n_prompt_tokens;
  generation_tokens_ += r.final.n_completion_tokens;
  if (r.final.n_completion_tokens > 0) ttft_.observe(r.final.timings.ttft_s);
  if (r.final.n_completion_tokens > 1) {
    tpot_.observe(r.final.timings.decode_s / double(r.final.n_completion_tokens - 1));
  }
  e2e_.observe(r.e2e_s);
  queue_.observe(r.final.timings.queue_s);
  prompt_len_.observe(double(r.final.n_prompt_tokens));
  generation_len_.observe(double(r.final.n_completion_tokens));
}

void Metrics::record_inter_token(double gap_s, int64_t n_tokens) {
  if (n_tokens <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Tokens that arrive together (speculation) share the gap.
  for (int64_t i = 0; i < n_tokens; ++i) itl_.observe(gap_s / double(n_tokens));
}

void Metrics::record_http_status(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++http_status_[status];
}

std::string Metrics::render(const engine::EngineStats& stats, int64_t queued_requests,
                            const std::string& model_name) const {
  const std::string label = "model_name=\"" + escape_label(model_name) + "\"";
  const std::string l = "{" + label + "}";
  std::string out;
  auto gauge = [&](const std::string& name, const char* help, double v) {
    header(&out, name, "gauge", help);
    out += name + l + " " + fmt(v) + "\n";
  };
  auto counter = [&](const std::string& name, const char* help, double v) {
    header(&out, name, "counter", help);
    out += name + l + " " + fmt(v) + "\n";
  };
  gauge("dspark:num_requests_running", "Requests in the running batch.", stats.sched.n_running);
  gauge("dspark:num_requests_waiting",
        "Requests submitted to the engine and not yet scheduled (preempted ones included).",
        double(queued_requests));
  gauge("dspark:kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = 100%).",
        stats.sched.kv_usage);
  gauge("dspark:num_kv_blocks", "KV cache blocks in the pool.", stats.sched.n_kv_blocks);
  counter("dspark:num_preemptions_total", "Requests preempted to free KV blocks.",
          double(stats.sched.n_preemptions));
  counter("dspark:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          double(stats.n_prompt_tokens));
  counter("dspark:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.",
          double(stats.sched.n_prefix_hit_tokens));
  counter("dspark:forked_prompt_tokens_total",
          "Prompt tokens of n > 1 choices whose KV was taken from another choice.",
          double(stats.sched.n_forked_tokens));
  counter("dspark:spec_decode_num_drafts_total", "Decode rounds that speculated.",
          double(stats.spec.n_rounds));
  counter("dspark:spec_decode_num_drafted_tokens_total", "Tokens proposed by the drafter.",
          double(stats.spec.n_drafted));
  counter("dspark:spec_decode_num_verified_tokens_total",
          "Drafted tokens admitted to the target forward.", double(stats.spec.n_verified));
  counter("dspark:spec_decode_num_accepted_tokens_total", "Drafted tokens accepted.",
          double(stats.spec.n_accepted));
  if (stats.spec_method != engine::SpecMethod::kNone) {
    // Why speculation is on or off: the controller's recent verified depth and how well the
    // drafter's calibrated confidences predict acceptance (0 = perfectly).
    const std::string ld =
        "{" + label + ",drafter=\"" + engine::spec_method_name(stats.spec_method) + "\"}";
    header(&out, "dspark:spec_decode_mean_depth", "gauge",
           "Drafted tokens the controller recently verified per speculating request.");
    out += "dspark:spec_decode_mean_depth" + ld + " " + fmt(stats.spec_mean_depth) + "\n";
    header(&out, "dspark:spec_decode_calibration_ece", "gauge",
           "Expected calibration error of the drafter's calibrated confidences.");
    out += "dspark:spec_decode_calibration_ece" + ld + " " + fmt(stats.spec_calibration_ece) + "\n";
    header(&out, "dspark:spec_decode_num_refused_steps_total", "counter",
           "Steps that decoded plainly because drafted steps had not beaten plain decoding at "
           "that load.");
    out += "dspark:spec_decode_num_refused_steps_total" + ld + " " +
           fmt(double(stats.spec_refused_steps)) + "\n";
  }
  header(&out, "dspark:spec_decode_num_accepted_tokens_per_pos", "counter",
         "Rounds that accepted a drafted token at each depth (position 0 = depth 1).");
  for (size_t i = 0; i < stats.spec.accepted_at.size(); ++i) {
    out += "dspark:spec_decode_num_accepted_tokens_per_pos{" + label + ",position=\"" +
           std::to_string(i) + "\"} " + std::to_string(stats.spec.accepted_at[i]) + "\n";
  }
  std::lock_guard<std::mutex> lock(mu_);
  counter("dspark:prompt_tokens_total", "Prompt tokens of finished requests.",
          double(prompt_tokens_));
  counter("dspark:generation_tokens_total", "Generated tokens of finished requests.",
          double(generation_tokens_));
  header(&out, "dspark:request_success_total", "counter", "Finished requests by finish reason.");
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    auto it = finished_.find(reason);
    out += "dspark:request_success_total{" + label + ",finished_reason=\"" + reason + "\"} " +
           std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
  }
  header(&out, "dspark:http_requests_total", "counter", "HTTP responses by status code.");
  for (const auto& [status, n] : http_status_) {
    out += "dspark:http_requests_total{" + label + ",code=\"" + std::to_string(status) + "\"} " +
           std::to_string(n) + "\n";
  }
  auto histogram = [&](const std::string& name, const char* help, const Histogram& h) {
    header(&out, name, "histogram", help);
    h.render(name, label, &out);
  };
  histogram("dspark:time_to_first_token_seconds", "Submit to first token.", ttft_);
  histogram("dspark:inter_token_latency_seconds", "Gap between streamed tokens.", itl_);
  histogram("dspark:time_per_output_token_seconds", "Decode time per token after the first.",
            tpot_);
  histogram("dspark:e2e_request_latency_seconds", "Submit to the final token.", e2e_);
  histogram("dspark:request_queue_time_seconds", "Submit to first scheduled.", queue_);
  histogram("dspark:request_prompt_tokens", "Prompt tokens per request.", prompt_len_);
  histogram("dspark:request_generation_tokens", "Generated tokens per request.", generation_len_);
  return out;
}

}  // namespace dspark::server
