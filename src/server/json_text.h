// JSON serialisation for every response: invalid UTF-8 (a token's partial bytes, raw bytes a
// detokenizer kept) becomes U+FFFD instead of making nlohmann::json throw.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dspark::server {

inline std::string to_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dspark::server
