// Finds JSON Schema keywords that xgrammar accepts but does not enforce (it skips them without a
// word), so that a schema using them is refused with the keyword's name instead of being
// silently loosened. Walks only schema positions: property names and enum values are data.
#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>

#include "xgrammar_glue.h"

namespace dspark {
namespace {

using nlohmann::json;

// Keywords xgrammar 0.2.9's JSON schema converter parses past without applying.
constexpr std::array<const char*, 11> kIgnored = {"not",
                                                  "if",
                                                  "then",
                                                  "else",
                                                  "dependentRequired",
                                                  "dependentSchemas",
                                                  "contains",
                                                  "minContains",
                                                  "maxContains",
                                                  "uniqueItems",
                                                  "dependencies"};

// Keywords whose value is a map from names to subschemas.
constexpr std::array<const char*, 4> kSchemaMaps = {"properties", "$defs", "definitions",
                                                    "patternProperties"};
// Keywords whose value is one subschema (or, for the old "items", an array of them).
constexpr std::array<const char*, 6> kSchemaValues = {"items",
                                                      "additionalProperties",
                                                      "propertyNames",
                                                      "unevaluatedProperties",
                                                      "unevaluatedItems",
                                                      "additionalItems"};
// Keywords whose value is an array of subschemas.
constexpr std::array<const char*, 4> kSchemaLists = {"anyOf", "oneOf", "allOf", "prefixItems"};

void visit(const json& schema, const std::string& path, std::optional<std::string>* found,
           int depth);

void visit_list(const json& list, const std::string& path, std::optional<std::string>* found,
                int depth) {
  if (!list.is_array()) return;
  for (size_t i = 0; i < list.size() && !*found; ++i) {
    visit(list[i], path + "/" + std::to_string(i), found, depth + 1);
  }
}

void visit(const json& schema, const std::string& path, std::optional<std::string>* found,
           int depth) {
  // Deeper than this, xgrammar's own recursion limit answers first.
  if (!schema.is_object() || *found || depth > 256) return;
  for (const char* keyword : kIgnored) {
    if (schema.contains(keyword)) {
      *found = "the keyword '" + std::string(keyword) + "' (at " + path + ") is not supported";
      return;
    }
  }
  for (const char* key : kSchemaMaps) {
    auto it = schema.find(key);
    if (it == schema.end() || !it->is_object()) continue;
    for (auto sub = it->begin(); sub != it->end() && !*found; ++sub) {
      visit(sub.value(), path + "/" + key + "/" + sub.key(), found, depth + 1);
    }
  }
  for (const char* key : kSchemaValues) {
    auto it = schema.find(key);
    if (it == schema.end()) continue;
    if (it->is_array()) {
      visit_list(*it, path + "/" + key, found, depth);
    } else {
      visit(*it, path + "/" + key, found, depth + 1);
    }
  }
  for (const char* key : kSchemaLists) {
    auto it = schema.find(key);
    if (it != schema.end()) visit_list(*it, path + "/" + key, found, depth);
  }
}

}  // namespace

std::optional<std::string> unsupported_schema_keyword(const std::string& schema_text) {
  json schema = json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return std::nullopt;  // xgrammar reports the syntax error
  std::optional<std::string> found;
  visit(schema, "#", &found, 0);
  return found;
}

}  // namespace dspark
