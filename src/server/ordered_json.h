// JSON parsed in its key order, in linear time. Chat templates print tools and tool-call
// arguments with tojson, so their keys must keep the client's order (as Python's json.loads
// keeps it); nlohmann's own ordered_json parser searches an object's keys on every insertion,
// which is quadratic in the object's size. This parser finds duplicate keys through a hash
// index (the last value wins, at the first one's place, as in Python) and bounds the depth and
// the keys of any one object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dspark::server {

using OrderedJson = nlohmann::ordered_json;

struct OrderedLimits {
  int32_t max_depth = 64;         // nesting of arrays and objects
  size_t max_object_keys = 1024;  // distinct keys of one object
};

// Parses `text` into *out. Returns "" on success, else why not: "not valid JSON", "nested
// deeper than N levels" or "an object with more than N keys".
std::string parse_ordered(std::string_view text, const OrderedLimits& limits, OrderedJson* out);

// The value of the top-level member `key` of the JSON object `text`, the other members skipped
// without being built (null when the object has no such member). Errors as parse_ordered; the
// limits apply to the member's value.
std::string parse_ordered_member(std::string_view text, std::string_view key,
                                 const OrderedLimits& limits, OrderedJson* out);

}  // namespace dspark::server
