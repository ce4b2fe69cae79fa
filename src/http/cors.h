// CORS for browser clients: allowed origins get Access-Control-Allow-Origin on every response,
// and preflight OPTIONS requests are answered here without reaching the handler.
#pragma once

#include <string>
#include <vector>

#include "dspark/http.h"
#include "response_writer.h"

namespace dspark::http::detail {

class CorsPolicy {
 public:
  explicit CorsPolicy(std::vector<std::string> origins) : origins_(std::move(origins)) {}

  bool enabled() const { return !origins_.empty(); }
  // Headers for a response to a request carrying `origin` (nullptr: no Origin header); empty
  // when CORS is off or the origin is not allowed.
  HeaderList response_headers(const std::string* origin) const;
  // OPTIONS with Origin and Access-Control-Request-Method, while CORS is on.
  bool is_preflight(const Request& request) const;
  // 204 with the allowed methods and headers, or 403 for an origin not allowed.
  Response preflight(const Request& request) const;

 private:
  bool allowed(const std::string& origin) const;

  std::vector<std::string> origins_;
};

}  // namespace dspark::http::detail
