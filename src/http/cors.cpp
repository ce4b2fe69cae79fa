#include "cors.h"

#include <algorithm>

namespace dspark::http::detail {

bool CorsPolicy::allowed(const std::string& origin) const {
  return std::any_of(origins_.begin(), origins_.end(),
                     [&](const std::string& o) { return o == "*" || o == origin; });
}

HeaderList CorsPolicy::response_headers(const std::string* origin) const {
  if (!enabled() || origin == nullptr || !allowed(*origin)) return {};
  // Echoing the origin (rather than "*") also works for requests that carry credentials.
  return {{"Access-Control-Allow-Origin", *origin}, {"Vary", "Origin"}};
}

bool CorsPolicy::is_preflight(const Request& request) const {
  return enabled() && request.method == "OPTIONS" && request.header("origin") != nullptr &&
         request.header("access-control-request-method") != nullptr;
}

Response CorsPolicy::preflight(const Request& request) const {
  const std::string* origin = request.header("origin");
  if (origin == nullptr || !allowed(*origin)) {
    return error_response(403, "origin not allowed by CORS: " + (origin ? *origin : ""));
  }
  Response r;
  r.status = 204;
  r.content_type = "text/plain";
  std::string allow_headers = "Authorization, Content-Type";
  // SDKs send their own headers (X-Stainless-*, OpenAI-Beta): allow what the browser asks for.
  if (const std::string* asked = request.header("access-control-request-headers");
      asked != nullptr && !asked->empty()) {
    allow_headers += ", " + *asked;
  }
  r.headers = {{"Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"},
               {"Access-Control-Allow-Headers", allow_headers},
               {"Access-Control-Max-Age", "600"}};
  return r;
}

}  // namespace dspark::http::detail
