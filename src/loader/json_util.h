// Strict JSON parsing for safetensors headers, index files and config.json.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "dspark/status.h"

namespace dspark::loader {

// Parses `text`; `what` names the document in errors. Rejects malformed JSON and objects with a
// repeated key (nlohmann would silently keep the last one).
Result<nlohmann::json> parse_json(std::string_view text, const std::string& what);

// A non-negative JSON integer, or nullopt.
std::optional<uint64_t> json_uint(const nlohmann::json& v);

}  // namespace dspark::loader
