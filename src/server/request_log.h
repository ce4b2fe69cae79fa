// One log line per HTTP request: id, method, path, status, tokens, TTFT, total time and the
// speculative accepted length. Streamed responses log when their stream ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dspark::server {

struct RequestLog {
  std::string id;  // response id for generations, "req-N" otherwise
  std::string method, path, remote;
  int status = 200;
  int64_t prompt_tokens = -1;  // -1: not a generation
  int64_t completion_tokens = 0;
  double ttft_s = 0.0;
  double accepted_length = 0.0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  // Writes the line (debug level for /health and /metrics polling, info otherwise).
  void emit() const;
};

}  // namespace dspark::server
