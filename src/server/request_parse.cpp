// OpenAI request bodies -> ParsedRequest, with type and range checks that name the field.
#include "request_parse.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "request_tools.h"
#include "structured_outputs.h"

namespace dspark::server {

namespace {

using json = nlohmann::json;

std::string num(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return json(v).dump();
}

ApiError wrong_type(const std::string& name, const char* expected, const json& got) {
  return bad_request("'" + name + "' must be " + expected + ", got " + got.type_name(), name);
}

// Reads the known fields of one JSON object with type and range checks.
class Fields {
 public:
  explicit Fields(const json& object) : object_(object) {}

  // nullptr when absent or null.
  const json* get(const char* name) const {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::optional<ApiError> boolean(const char* name, bool* out) const {
    const json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) return wrong_type(name, "a boolean", *v);
    *out = v->get<bool>();
    return std::nullopt;
  }

  std::optional<ApiError> string(const char* name, std::string* out) const {
    const json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_string()) return wrong_type(name, "a string", *v);
    *out = v->get<std::string>();
    return std::nullopt;
  }

  // A number in [lo, hi].
  std::optional<ApiError> number(const char* name, double lo, double hi, float* out) const {
    const json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_number()) return wrong_type(name, "a number", *v);
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) {
      return bad_request("'" + std::string(name) + "' must be in [" + num(lo) + ", " + num(hi) +
                             "], got " + num(d),
                         name);
    }
    *out = static_cast<float>(d);
    return std::nullopt;
  }

  // An integer in [lo, hi] (a float with an integral value counts).
  std::optional<ApiError> integer(const char* name, int64_t lo, int64_t hi,
                                  std::optional<int64_t>* out) const {
    const json* v = get(name);
    if (!v) return std::nullopt;
    return integer_value(name, *v, lo, hi, out);
  }

  static std::optional<ApiError> integer_value(const std::string& name, const json& v, int64_t lo,
                                               int64_t hi, std::optional<int64_t>* out) {
    const auto range_error = [&](const std::string& got) {
      return bad_request("'" + name + "' must be an integer in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "], got " + got,
                         name);
    };
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(hi)) return range_error(std::to_string(u));
      *out = static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      *out = v.get<int64_t>();
    } else if (v.is_number_float()) {
      const double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e15) {
        return wrong_type(name, "an integer", v);
      }
      *out = static_cast<int64_t>(d);
    } else {
      return wrong_type(name, "an integer", v);
    }
    if (**out < lo || **out > hi) return range_error(std::to_string(**out));
    return std::nullopt;
  }

 private:
  const json& object_;
};

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

#define DSPARK_API_CHECK(expr)                       \
  do {                                               \
    if (auto api_error_ = (expr)) return api_error_; \
  } while (0)

std::optional<ApiError> parse_stop(const Fields& f, const RequestLimits& limits,
                                   SamplingParams* p) {
  const json* v = f.get("stop");
  if (!v) return std::nullopt;
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) return wrong_type("stop", "a string or a list of strings", s);
      stops.push_back(s.get<std::string>());
    }
  } else {
    return wrong_type("stop", "a string or a list of strings", *v);
  }
  if (static_cast<int64_t>(stops.size()) > limits.max_stop) {
    return bad_request("'stop' has " + std::to_string(stops.size()) + " strings; at most " +
                           std::to_string(limits.max_stop) + " are allowed",
                       "stop");
  }
  for (std::string& s : stops) {
    if (s.size() > limits.max_stop_bytes) {
      return bad_request("a 'stop' string is " + std::to_string(s.size()) +
                             " bytes long; at most " + std::to_string(limits.max_stop_bytes) +
                             " are allowed",
                         "stop");
    }
    // An empty stop string can never match anything useful: it means "no stop".
    if (!s.empty()) p->stop.push_back(std::move(s));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_token_list(const std::string& name, const json& v,
                                         std::vector<int32_t>* out) {
  if (!v.is_array()) return wrong_type(name, "a list of token ids", v);
  for (const json& t : v) {
    std::optional<int64_t> id;
    DSPARK_API_CHECK(Fields::integer_value(name, t, 0, kInt32Max, &id));
    out->push_back(static_cast<int32_t>(*id));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_logit_bias(const Fields& f, const RequestLimits& limits,
                                         SamplingParams* p) {
  const json* v = f.get("logit_bias");
  if (!v) return std::nullopt;
  if (!v->is_object()) return wrong_type("logit_bias", "an object", *v);
  if (static_cast<int64_t>(v->size()) > limits.max_logit_bias) {
    return bad_request("'logit_bias' has " + std::to_string(v->size()) + " entries; at most " +
                           std::to_string(limits.max_logit_bias) + " are allowed",
                       "logit_bias");
  }
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& key = it.key();
    int64_t id = 0;
    bool ok = !key.empty() && key.size() <= 10;
    for (char c : key) {
      if (c < '0' || c > '9') ok = false;
      if (ok) id = id * 10 + (c - '0');
    }
    if (!ok || id > kInt32Max) {
      return bad_request("'logit_bias' keys must be token ids, got \"" + key + "\"", "logit_bias");
    }
    if (!it.value().is_number()) return wrong_type("logit_bias", "numbers as values", it.value());
    const double bias = it.value().get<double>();
    if (!(bias >= -100.0 && bias <= 100.0)) {
      return bad_request("'logit_bias' values must be in [-100, 100], got " + num(bias),
                         "logit_bias");
    }
    p->logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
  }
  return std::nullopt;
}

// Fields both endpoints share.
std::optional<ApiError> parse_common(const Fields& f, const RequestLimits& limits,
                                     ParsedRequest* r) {
  SamplingParams& p = r->sampling;
  p.temperature = 1.0f;  // OpenAI's default
  DSPARK_API_CHECK(f.string("model", &r->model));
  DSPARK_API_CHECK(f.string("user", &r->user));
  std::optional<int64_t> v;
  DSPARK_API_CHECK(f.integer("max_tokens", 1, kInt32Max, &v));
  if (v) r->max_tokens = static_cast<int32_t>(*v);
  v.reset();
  DSPARK_API_CHECK(f.integer("max_completion_tokens", 1, kInt32Max, &v));
  if (v) r->max_tokens = static_cast<int32_t>(*v);
  v.reset();
  DSPARK_API_CHECK(f.integer("n", 1, limits.max_n, &v));
  if (v) r->n = static_cast<int32_t>(*v);
  DSPARK_API_CHECK(f.number("temperature", 0.0, 2.0, &p.temperature));
  DSPARK_API_CHECK(f.number("top_p", 0.0, 1.0, &p.top_p));
  if (f.get("top_p") && p.top_p <= 0.0f) {
    return bad_request("'top_p' must be in (0, 1], got 0", "top_p");
  }
  DSPARK_API_CHECK(f.number("min_p", 0.0, 1.0, &p.min_p));
  DSPARK_API_CHECK(f.number("presence_penalty", -2.0, 2.0, &p.presence_penalty));
  DSPARK_API_CHECK(f.number("frequency_penalty", -2.0, 2.0, &p.frequency_penalty));
  DSPARK_API_CHECK(f.number("repetition_penalty", 0.0, 100.0, &p.repetition_penalty));
  if (f.get("repetition_penalty") && p.repetition_penalty <= 0.0f) {
    return bad_request("'repetition_penalty' must be in (0, 100], got 0", "repetition_penalty");
  }
  v.reset();
  DSPARK_API_CHECK(f.integer("top_k", -1, kInt32Max, &v));
  if (v) p.top_k = *v < 0 ? 0 : static_cast<int32_t>(*v);
  v.reset();
  DSPARK_API_CHECK(f.integer("min_tokens", 0, kInt32Max, &v));
  if (v) p.min_tokens = static_cast<int32_t>(*v);
  DSPARK_API_CHECK(f.boolean("ignore_eos", &p.ignore_eos));
  DSPARK_API_CHECK(f.boolean("speculation", &r->speculate));
  DSPARK_API_CHECK(f.boolean("return_token_ids", &r->return_token_ids));
  if (const json* ids = f.get("stop_token_ids")) {
    DSPARK_API_CHECK(parse_token_list("stop_token_ids", *ids, &p.stop_token_ids));
    if (static_cast<int64_t>(p.stop_token_ids.size()) > limits.max_stop_token_ids) {
      return bad_request("'stop_token_ids' has " + std::to_string(p.stop_token_ids.size()) +
                             " ids; at most " + std::to_string(limits.max_stop_token_ids) +
                             " are allowed",
                         "stop_token_ids");
    }
  }
  DSPARK_API_CHECK(parse_stop(f, limits, &p));
  DSPARK_API_CHECK(parse_logit_bias(f, limits, &p));
  if (const json* seed = f.get("seed")) {
    if (seed->is_number_unsigned()) {
      r->seed = seed->get<uint64_t>();
    } else {
      std::optional<int64_t> s;
      DSPARK_API_CHECK(Fields::integer_value("seed", *seed, std::numeric_limits<int64_t>::min(),
                                             std::numeric_limits<int64_t>::max(), &s));
      r->seed = static_cast<uint64_t>(*s);
    }
  }
  DSPARK_API_CHECK(f.boolean("stream", &r->stream));
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) return wrong_type("stream_options", "an object", *so);
    DSPARK_API_CHECK(Fields(*so).boolean("include_usage", &r->include_usage));
  }
  v.reset();
  DSPARK_API_CHECK(f.integer("best_of", 1, kInt32Max, &v));
  if (v && *v != r->n) {
    return bad_request("'best_of' other than n is not supported", "best_of");
  }
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const Fields& f, const RequestLimits& limits,
                                       ParsedRequest* r) {
  const json* v = f.get("messages");
  if (!v) return bad_request("'messages' is required", "messages");
  if (!v->is_array()) return wrong_type("messages", "a list of messages", *v);
  if (v->empty()) return bad_request("'messages' must not be empty", "messages");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return wrong_type(where, "an object", m);
    chat::Message msg;
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || role->get<std::string>().empty()) {
      return bad_request("'" + where + ".role' must be a non-empty string", where + ".role");
    }
    msg.role = role->get<std::string>();
    auto content = m.find("content");
    if (content != m.end()) DSPARK_API_CHECK(message_content(*content, i, &msg.content));
    auto name = m.find("name");
    if (name != m.end() && !name->is_null()) {
      if (!name->is_string()) return wrong_type(where + ".name", "a string", *name);
      msg.name = name->get<std::string>();
    }
    MessageTools tools;
    DSPARK_API_CHECK(parse_message_tools(m, i, msg.role, limits, &tools));
    r->messages.push_back(std::move(msg));
    r->message_tools.push_back(std::move(tools));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const Fields& f, ParsedRequest* r) {
  const json* v = f.get("prompt");
  if (!v) return bad_request("'prompt' is required", "prompt");
  const char* expected = "a string, a list of strings, a list of token ids or a list of lists";
  if (v->is_string()) {
    r->prompts.push_back(PromptInput{v->get<std::string>(), {}, false});
    return std::nullopt;
  }
  if (!v->is_array()) return wrong_type("prompt", expected, *v);
  if (v->empty()) return bad_request("'prompt' must not be an empty list", "prompt");
  const json& first = v->front();
  if (first.is_number()) {
    PromptInput in;
    in.is_tokens = true;
    DSPARK_API_CHECK(parse_token_list("prompt", *v, &in.tokens));
    r->prompts.push_back(std::move(in));
    return std::nullopt;
  }
  for (const json& item : *v) {
    if (first.is_string() && item.is_string()) {
      r->prompts.push_back(PromptInput{item.get<std::string>(), {}, false});
    } else if (first.is_array() && item.is_array()) {
      if (item.empty()) return bad_request("'prompt' holds an empty token list", "prompt");
      PromptInput in;
      in.is_tokens = true;
      DSPARK_API_CHECK(parse_token_list("prompt", item, &in.tokens));
      r->prompts.push_back(std::move(in));
    } else {
      return wrong_type("prompt", expected, item);
    }
  }
  return std::nullopt;
}

}  // namespace

bool json_depth_within(std::string_view body, int32_t max_depth) {
  int32_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::optional<ApiError> message_content(const nlohmann::json& content, size_t index,
                                        std::string* out) {
  const std::string where = "messages[" + std::to_string(index) + "].content";
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return wrong_type(where, "a string or a list of parts", content);
  for (const json& part : content) {
    if (!part.is_object()) return wrong_type(where, "a list of parts (objects)", part);
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) {
      return bad_request("each part of '" + where + "' needs a string 'type'", where);
    }
    if (type->get<std::string>() != "text") {
      return bad_request("'" + where + "' has a part of type '" + type->get<std::string>() +
                             "'; only text parts are supported",
                         where);
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return bad_request("a text part of '" + where + "' needs a string 'text'", where);
    }
    *out += text->get<std::string>();
  }
  return std::nullopt;
}

bool ParsedRequest::has_tool_messages() const {
  return std::any_of(message_tools.begin(), message_tools.end(), [](const MessageTools& m) {
    return !m.tool_calls.empty() || m.tool_call_id.has_value();
  });
}

namespace {

// The body parsed; `text` is its JSON text (the tools are read from it again in key order).
std::optional<ApiError> parse_body(const json& body, std::string_view text, Endpoint endpoint,
                                   const RequestLimits& limits, ParsedRequest* out) {
  if (!body.is_object()) {
    return bad_request(std::string("the request body must be a JSON object, got ") +
                       body.type_name());
  }
  ParsedRequest r;
  r.endpoint = endpoint;
  Fields f(body);
  DSPARK_API_CHECK(parse_common(f, limits, &r));
  DSPARK_API_CHECK(parse_structured_outputs(body, text, limits, &r));
  if (endpoint == Endpoint::kChat) {
    DSPARK_API_CHECK(parse_messages(f, limits, &r));
    DSPARK_API_CHECK(parse_tools(body, text, limits, &r));
    DSPARK_API_CHECK(tool_choice_grammar(&r));
    DSPARK_API_CHECK(f.boolean("logprobs", &r.logprobs));
    std::optional<int64_t> top;
    DSPARK_API_CHECK(f.integer("top_logprobs", 0, limits.max_top_logprobs, &top));
    if (top) {
      if (!r.logprobs) {
        return bad_request("'top_logprobs' needs 'logprobs' set to true", "top_logprobs");
      }
      r.top_logprobs = static_cast<int32_t>(*top);
    }
  } else {
    DSPARK_API_CHECK(parse_prompt(f, &r));
    std::optional<int64_t> lp;
    DSPARK_API_CHECK(f.integer("logprobs", 0, limits.max_top_logprobs, &lp));
    if (lp) {
      r.logprobs = true;
      r.top_logprobs = static_cast<int32_t>(*lp);
    }
    DSPARK_API_CHECK(f.boolean("echo", &r.echo));
    if (r.echo && r.logprobs) {
      return bad_request("'echo' together with 'logprobs' is not supported (prompt logprobs)",
                         "echo");
    }
    std::string suffix;
    DSPARK_API_CHECK(f.string("suffix", &suffix));
    if (!suffix.empty()) return bad_request("'suffix' is not supported", "suffix");
  }
  if (r.grammar && r.sampling.min_tokens > 0) {
    // min_tokens would hold back the end of sequence where the grammar allows nothing else.
    return bad_request("'min_tokens' cannot be combined with '" + r.grammar_param +
                           "': the grammar decides where the output ends",
                       "min_tokens");
  }
  const int64_t choices = int64_t(r.n) * int64_t(std::max<size_t>(r.prompts.size(), 1));
  if (choices > limits.max_choices) {
    return bad_request("n (" + std::to_string(r.n) + ") times the number of prompts (" +
                           std::to_string(r.prompts.size()) + ") is " + std::to_string(choices) +
                           "; at most " + std::to_string(limits.max_choices) +
                           " choices per request are allowed",
                       "n");
  }
  *out = std::move(r);
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_request(std::string_view body, Endpoint endpoint,
                                      const RequestLimits& limits, ParsedRequest* out) {
  if (!json_depth_within(body, limits.max_json_depth)) {
    return bad_request("the JSON body nests deeper than " + std::to_string(limits.max_json_depth) +
                       " levels");
  }
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded()) return bad_request("the request body is not valid JSON");
  return parse_body(parsed, body, endpoint, limits, out);
}

}  // namespace dspark::server
