// The per-request log line.
#include "request_log.h"

#include <spdlog/spdlog.h>

namespace dspark::server {

void RequestLog::emit() const {
  const double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const bool polling = method == "GET" && (path == "/health" || path == "/metrics");
  const auto level = polling         ? spdlog::level::debug
                     : status >= 500 ? spdlog::level::warn
                                     : spdlog::level::info;
  if (prompt_tokens < 0) {
    spdlog::log(level, "{} {} {} {} -> {} in {:.1f} ms", id, remote, method, path, status,
                total_ms);
    return;
  }
  spdlog::log(level,
              "{} {} {} {} -> {}: prompt {} tok, completion {} tok, ttft {:.1f} ms, total "
              "{:.1f} ms, accepted length {:.2f}",
              id, remote, method, path, status, prompt_tokens, completion_tokens, ttft_s * 1e3,
              total_ms, accepted_length);
}

}  // namespace dspark::server
