// Strict JSON parsing: nlohmann's parser plus a repeated-key check via its parse callback.
#include "json_util.h"

#include <set>
#include <vector>

namespace dspark::loader {

Result<nlohmann::json> parse_json(std::string_view text, const std::string& what) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> open_objects;  // keys seen in each enclosing object
  std::string repeated;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second &&
            repeated.empty()) {
          repeated = parsed.get_ref<const std::string&>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json value = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Error{what + " is not valid JSON"};
  if (!repeated.empty()) return Error{what + " repeats the key '" + repeated + "'"};
  return value;
}

std::optional<uint64_t> json_uint(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace dspark::loader
