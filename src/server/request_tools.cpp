// Validation of OpenAI's tool-calling fields.
#include "request_tools.h"

#include <set>

namespace dspark::server {

namespace {

using json = nlohmann::json;

ApiError wrong_type(const std::string& name, const char* expected, const json& got) {
  return bad_request("'" + name + "' must be " + expected + ", got " + got.type_name(), name);
}

// nullptr when absent or null.
const json* member(const json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// OpenAI's rule for function names: ^[a-zA-Z0-9_-]{1,64}$.
bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// One entry of tools: {"type": "function", "function": {"name", "description"?, "parameters"?,
// "strict"?}}; its name joins `names`.
std::optional<ApiError> check_tool(const json& tool, size_t index, std::set<std::string>* names) {
  const std::string where = "tools[" + std::to_string(index) + "]";
  if (!tool.is_object()) return wrong_type(where, "an object", tool);
  const json* type = member(tool, "type");
  if (!type || !type->is_string()) {
    return bad_request("'" + where + ".type' must be \"function\"", where + ".type");
  }
  if (type->get<std::string>() != "function") {
    return bad_request("'" + where + ".type' is '" + type->get<std::string>() +
                           "'; only 'function' tools are supported",
                       where + ".type", "invalid_value");
  }
  const std::string fn_where = where + ".function";
  const json* fn = member(tool, "function");
  if (!fn) return bad_request("'" + fn_where + "' is required", fn_where);
  if (!fn->is_object()) return wrong_type(fn_where, "an object", *fn);
  const json* name = member(*fn, "name");
  if (!name) return bad_request("'" + fn_where + ".name' is required", fn_where + ".name");
  if (!name->is_string()) return wrong_type(fn_where + ".name", "a string", *name);
  const std::string n = name->get<std::string>();
  if (!valid_function_name(n)) {
    return bad_request("'" + fn_where + ".name' must be 1 to 64 letters, digits, underscores or " +
                           "dashes, got '" + n + "'",
                       fn_where + ".name", "invalid_value");
  }
  if (!names->insert(n).second) {
    return bad_request("'" + fn_where + ".name': the function '" + n +
                           "' is defined twice; tool names must be unique",
                       fn_where + ".name", "invalid_value");
  }
  if (const json* d = member(*fn, "description"); d && !d->is_string()) {
    return wrong_type(fn_where + ".description", "a string", *d);
  }
  if (const json* p = member(*fn, "parameters"); p && !p->is_object()) {
    return wrong_type(fn_where + ".parameters", "an object (a JSON schema)", *p);
  }
  if (const json* s = member(*fn, "strict"); s && !s->is_boolean()) {
    return wrong_type(fn_where + ".strict", "a boolean", *s);
  }
  return std::nullopt;
}

// "none" and "auto" are served; "required" and a named function (which must be among the
// tools) are 400s until the server has constrained decoding.
std::optional<ApiError> parse_tool_choice(const json& body, const std::set<std::string>& names,
                                          ParsedRequest* out) {
  const json* v = member(body, "tool_choice");
  if (!v) return std::nullopt;
  if (v->is_string()) {
    const std::string s = v->get<std::string>();
    if (s == "none" || s == "auto") {
      out->tool_choice = s == "none" ? ToolChoice::kNone : ToolChoice::kAuto;
      return std::nullopt;
    }
    if (s == "required") {
      out->tool_choice = ToolChoice::kRequired;
      return std::nullopt;
    }
    return bad_request(
        "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": "
        "\"function\", \"function\": {\"name\": ...}}, got \"" +
            s + "\"",
        "tool_choice", "invalid_value");
  }
  if (!v->is_object()) return wrong_type("tool_choice", "a string or an object", *v);
  const json* type = member(*v, "type");
  const json* fn = member(*v, "function");
  const json* name = fn && fn->is_object() ? member(*fn, "name") : nullptr;
  if (!type || *type != "function" || !name || !name->is_string()) {
    return bad_request(
        "an object 'tool_choice' must be {\"type\": \"function\", \"function\": "
        "{\"name\": ...}}",
        "tool_choice");
  }
  const std::string n = name->get<std::string>();
  if (!names.count(n)) {
    return bad_request("'tool_choice' names the function '" + n + "', which is not in 'tools'",
                       "tool_choice", "invalid_value");
  }
  out->tool_choice = ToolChoice::kNamed;
  out->tool_choice_name = n;
  return std::nullopt;
}

// One entry of an assistant message's tool_calls, in the template's shape.
std::optional<ApiError> parse_tool_call(const json& call, const std::string& where,
                                        const RequestLimits& limits, OrderedJson* out) {
  if (!call.is_object()) return wrong_type(where, "an object", call);
  const json* id = member(call, "id");
  if (!id || !id->is_string()) {
    return bad_request("'" + where + ".id' must be a string", where + ".id");
  }
  const json* type = member(call, "type");
  if (type && *type != "function") {
    return bad_request("'" + where + ".type' must be \"function\"", where + ".type");
  }
  const json* fn = member(call, "function");
  if (!fn || !fn->is_object()) {
    return bad_request("'" + where + ".function' must be an object", where + ".function");
  }
  const json* name = member(*fn, "name");
  if (!name || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return bad_request("'" + where + ".function.name' must be a non-empty string",
                       where + ".function.name");
  }
  const std::string args_where = where + ".function.arguments";
  const json* args = member(*fn, "arguments");
  if (!args || !args->is_string()) {
    return bad_request("'" + args_where + "' must be a string holding a JSON object", args_where);
  }
  OrderedJson parsed;
  const std::string error =
      parse_ordered(args->get_ref<const std::string&>(),
                    OrderedLimits{limits.max_json_depth, limits.max_tool_object_keys}, &parsed);
  if (!error.empty()) {
    return bad_request("'" + args_where + "' must hold JSON, but it is " + error, args_where);
  }
  *out = OrderedJson{{"id", id->get<std::string>()},
                     {"type", "function"},
                     {"function", {{"name", name->get<std::string>()}, {"arguments", parsed}}}};
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_tools(const json& body, std::string_view body_text,
                                    const RequestLimits& limits, ParsedRequest* out) {
  std::set<std::string> names;
  if (const json* tools = member(body, "tools")) {
    if (!tools->is_array()) return wrong_type("tools", "a list of tools", *tools);
    if (int64_t(tools->size()) > limits.max_tools) {
      return bad_request("'tools' has " + std::to_string(tools->size()) + " tools; at most " +
                             std::to_string(limits.max_tools) + " are allowed",
                         "tools");
    }
    for (size_t i = 0; i < tools->size(); ++i) {
      if (auto e = check_tool((*tools)[i], i, &names)) return e;
    }
    // Read again in key order: templates print each tool with tojson.
    OrderedJson ordered;
    const std::string error = parse_ordered_member(
        body_text, "tools", OrderedLimits{limits.max_json_depth, limits.max_tool_object_keys},
        &ordered);
    if (!error.empty()) return bad_request("'tools' holds " + error, "tools");
    if (!ordered.is_array() || ordered.size() != tools->size()) {
      return bad_request("'tools' could not be read", "tools");
    }
    for (OrderedJson& tool : ordered) out->tools.push_back(std::move(tool));
  }
  if (auto e = parse_tool_choice(body, names, out)) return e;
  if (const json* p = member(body, "parallel_tool_calls")) {
    if (!p->is_boolean()) return wrong_type("parallel_tool_calls", "a boolean", *p);
    out->parallel_tool_calls = p->get<bool>();
  }
  return std::nullopt;
}

std::optional<ApiError> parse_message_tools(const json& message, size_t index,
                                            const std::string& role, const RequestLimits& limits,
                                            MessageTools* out) {
  const std::string where = "messages[" + std::to_string(index) + "]";
  if (const json* calls = member(message, "tool_calls")) {
    if (role != "assistant") {
      return bad_request("'" + where + ".tool_calls' is only allowed on assistant messages",
                         where + ".tool_calls");
    }
    if (!calls->is_array()) return wrong_type(where + ".tool_calls", "a list", *calls);
    for (size_t j = 0; j < calls->size(); ++j) {
      OrderedJson call;
      const std::string call_where = where + ".tool_calls[" + std::to_string(j) + "]";
      if (auto e = parse_tool_call((*calls)[j], call_where, limits, &call)) return e;
      out->tool_calls.push_back(std::move(call));
    }
  }
  if (const json* id = member(message, "tool_call_id")) {
    if (role != "tool") {
      return bad_request("'" + where + ".tool_call_id' is only allowed on tool messages",
                         where + ".tool_call_id");
    }
    if (!id->is_string()) return wrong_type(where + ".tool_call_id", "a string", *id);
    out->tool_call_id = id->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace dspark::server
