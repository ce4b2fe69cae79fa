// response_format, guided_* and structured_outputs into one GrammarSpec.
#include "structured_outputs.h"

#include <string>
#include <vector>

#include "ordered_json.h"

namespace dspark::server {

namespace {

// Schemas keep the client's key order: xgrammar emits properties in the schema's order, and a
// std::map-backed nlohmann::json would sort them alphabetically.
using json = OrderedJson;

// nullptr when absent or null.
const json* member(const json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

ApiError wrong_type(const std::string& name, const char* expected, const json& got) {
  return bad_request("'" + name + "' must be " + expected + ", got " + got.type_name(), name);
}

// One guide: the spec and the field it came from.
struct Guide {
  GrammarSpec spec;
  std::string param;
};

// A JSON schema given as an object or as its JSON text (vLLM accepts both for guided_json).
std::optional<ApiError> schema_text(const json& value, const std::string& param,
                                    const OrderedLimits& limits, std::string* out) {
  json schema = value;
  if (value.is_string()) {
    const std::string error = parse_ordered(value.get<std::string>(), limits, &schema);
    if (!error.empty()) {
      return bad_request("'" + param + "' is " + error, param, "invalid_schema");
    }
  }
  if (!schema.is_object() && !schema.is_boolean()) {
    return wrong_type(param, "a JSON schema (an object)", schema);
  }
  *out = schema.dump();
  return std::nullopt;
}

std::optional<ApiError> choices(const json& value, const std::string& param,
                                std::vector<std::string>* out) {
  if (!value.is_array()) return wrong_type(param, "a list of strings", value);
  if (value.empty()) return bad_request("'" + param + "' must list at least one choice", param);
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      return wrong_type(param + "[" + std::to_string(i) + "]", "a string", value[i]);
    }
    out->push_back(value[i].get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> nonempty_string(const json& value, const std::string& param,
                                        std::string* out) {
  if (!value.is_string()) return wrong_type(param, "a string", value);
  *out = value.get<std::string>();
  if (out->empty()) return bad_request("'" + param + "' must not be empty", param);
  return std::nullopt;
}

// response_format: type text (no guide), json_object or json_schema.
std::optional<ApiError> response_format(const json& rf, const OrderedLimits& limits,
                                        std::vector<Guide>* guides) {
  if (!rf.is_object()) return wrong_type("response_format", "an object", rf);
  const json* type = member(rf, "type");
  if (!type || !type->is_string()) {
    return bad_request("'response_format' needs a string 'type'", "response_format.type");
  }
  const std::string t = type->get<std::string>();
  if (t == "text") return std::nullopt;
  if (t == "json_object") {
    guides->push_back(Guide{GrammarSpec::json_object(), "response_format"});
    return std::nullopt;
  }
  if (t != "json_schema") {
    return bad_request(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema', "
        "got '" +
            t + "'",
        "response_format.type", "invalid_value");
  }
  const json* js = member(rf, "json_schema");
  if (!js) {
    return bad_request("'response_format.json_schema' is required with type 'json_schema'",
                       "response_format.json_schema");
  }
  if (!js->is_object()) return wrong_type("response_format.json_schema", "an object", *js);
  if (const json* name = member(*js, "name"); name && !name->is_string()) {
    return wrong_type("response_format.json_schema.name", "a string", *name);
  }
  bool strict = true;
  if (const json* s = member(*js, "strict")) {
    if (!s->is_boolean()) return wrong_type("response_format.json_schema.strict", "a boolean", *s);
    strict = s->get<bool>();
  }
  const std::string param = "response_format.json_schema.schema";
  const json* schema = member(*js, "schema");
  if (!schema) return bad_request("'" + param + "' is required", param);
  std::string text;
  if (schema->is_string()) return wrong_type(param, "a JSON schema (an object)", *schema);
  if (auto e = schema_text(*schema, param, limits, &text)) return e;
  guides->push_back(Guide{GrammarSpec::json_schema(std::move(text), strict), param});
  return std::nullopt;
}

// One of json, regex, choice, grammar, json_object under `prefix` (vLLM's guided_<kind> when
// prefix is "guided_", structured_outputs.<kind> when it is "structured_outputs.").
std::optional<ApiError> guide(const char* kind, const json& value, const std::string& prefix,
                              const OrderedLimits& limits, std::vector<Guide>* guides) {
  const std::string param = prefix + kind;
  const std::string k = kind;
  Guide g;
  g.param = param;
  if (k == "json") {
    std::string text;
    if (auto e = schema_text(value, param, limits, &text)) return e;
    g.spec = GrammarSpec::json_schema(std::move(text));
  } else if (k == "regex") {
    std::string pattern;
    if (auto e = nonempty_string(value, param, &pattern)) return e;
    g.spec = GrammarSpec::regex(std::move(pattern));
  } else if (k == "choice") {
    std::vector<std::string> list;
    if (auto e = choices(value, param, &list)) return e;
    g.spec = GrammarSpec::choice(std::move(list));
  } else if (k == "grammar") {
    std::string text;
    if (auto e = nonempty_string(value, param, &text)) return e;
    g.spec = GrammarSpec::ebnf(std::move(text));
  } else {  // json_object
    if (!value.is_boolean()) return wrong_type(param, "a boolean", value);
    if (!value.get<bool>()) return std::nullopt;
    g.spec = GrammarSpec::json_object();
  }
  guides->push_back(std::move(g));
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_structured_outputs(const nlohmann::json& unordered,
                                                 std::string_view text,
                                                 const RequestLimits& request_limits,
                                                 ParsedRequest* out) {
  bool any = false;
  for (const char* name : {"response_format", "guided_json", "guided_regex", "guided_choice",
                           "guided_grammar", "structured_outputs"}) {
    auto it = unordered.find(name);
    any = any || (it != unordered.end() && !it->is_null());
  }
  if (!any) return std::nullopt;
  // The body again, in key order (only for requests with these fields).
  const OrderedLimits limits{request_limits.max_json_depth, request_limits.max_tool_object_keys};
  json body;
  const std::string error = parse_ordered(text, limits, &body);
  if (!error.empty()) return bad_request("the request body holds " + error);
  std::vector<Guide> guides;
  if (const json* rf = member(body, "response_format")) {
    if (auto e = response_format(*rf, limits, &guides)) return e;
  }
  for (const char* kind : {"json", "regex", "choice", "grammar"}) {
    const std::string name = std::string("guided_") + kind;
    if (const json* v = member(body, name.c_str())) {
      if (auto e = guide(kind, *v, "guided_", limits, &guides)) return e;
    }
  }
  if (const json* so = member(body, "structured_outputs")) {
    if (!so->is_object()) return wrong_type("structured_outputs", "an object", *so);
    for (const auto& [key, value] : so->items()) {
      if (value.is_null()) continue;
      bool known = false;
      for (const char* kind : {"json", "regex", "choice", "grammar", "json_object"}) {
        if (key != kind) continue;
        known = true;
        if (auto e = guide(kind, value, "structured_outputs.", limits, &guides)) return e;
      }
      if (!known) {
        return bad_request("'structured_outputs." + key +
                               "' is not supported (json, regex, choice, grammar and json_object "
                               "are)",
                           "structured_outputs." + key);
      }
    }
  }
  if (guides.size() > 1) {
    return bad_request("'" + guides[0].param + "' and '" + guides[1].param +
                           "' both constrain the output; give at most one of response_format "
                           "(json_object, json_schema), guided_json, guided_regex, guided_choice, "
                           "guided_grammar and structured_outputs",
                       guides[1].param);
  }
  if (guides.empty()) return std::nullopt;
  // JSON in the compact layout {"a": 1, "b": [2, 3]}: with any whitespace allowed, small models
  // loop on newlines and spaces until max_tokens (peers report it too).
  guides[0].spec.any_whitespace = false;
  out->grammar = std::move(guides[0].spec);
  out->grammar_param = std::move(guides[0].param);
  return std::nullopt;
}

std::optional<ApiError> tool_choice_grammar(ParsedRequest* out) {
  if (out->tool_choice != ToolChoice::kRequired && out->tool_choice != ToolChoice::kNamed) {
    return std::nullopt;
  }
  if (out->grammar) {
    return bad_request("'tool_choice' and '" + out->grammar_param +
                           "' both constrain the output; give one of them",
                       out->grammar_param);
  }
  // One alternative per callable function: {"name": <it>, "arguments": <its parameters>}, the
  // keys in the order the model writes them.
  OrderedJson alternatives = OrderedJson::array();
  for (const OrderedJson& tool : out->tools) {
    const OrderedJson& fn = tool.at("function");
    const std::string name = fn.at("name").get<std::string>();
    if (out->tool_choice == ToolChoice::kNamed && name != out->tool_choice_name) continue;
    OrderedJson parameters = OrderedJson{{"type", "object"}};
    if (auto p = fn.find("parameters"); p != fn.end() && !p->is_null()) parameters = *p;
    OrderedJson properties = OrderedJson::object();
    properties["name"] = OrderedJson{{"enum", OrderedJson::array({name})}};
    properties["arguments"] = std::move(parameters);
    alternatives.push_back(OrderedJson{{"type", "object"},
                                       {"properties", std::move(properties)},
                                       {"required", OrderedJson::array({"name", "arguments"})}});
  }
  if (alternatives.empty()) {  // parse_tools checked the name; no tools at all
    return bad_request("'tool_choice' needs 'tools'", "tool_choice");
  }
  const OrderedJson schema =
      alternatives.size() == 1 ? alternatives[0] : OrderedJson{{"anyOf", alternatives}};
  GrammarSpec spec = GrammarSpec::json_schema(schema.dump());
  spec.any_whitespace = false;
  spec.prefix = "<tool_call>\n";
  spec.suffix = "\n</tool_call>";
  out->grammar = std::move(spec);
  out->grammar_param = "tool_choice";
  return std::nullopt;
}

}  // namespace dspark::server
