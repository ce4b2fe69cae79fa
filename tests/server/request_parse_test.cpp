// Request parsing and validation: every field's type and range, the prompt and message forms,
// limits, and that errors name the offending parameter.
#include <gtest/gtest.h>

#include "server/request_parse.h"

namespace dspark::server {
namespace {

struct Parsed {
  std::optional<ApiError> error;
  ParsedRequest req;
};

Parsed chat(const std::string& body, RequestLimits limits = {}) {
  Parsed p;
  p.error = parse_request(body, Endpoint::kChat, limits, &p.req);
  return p;
}

Parsed completion(const std::string& body, RequestLimits limits = {}) {
  Parsed p;
  p.error = parse_request(body, Endpoint::kCompletion, limits, &p.req);
  return p;
}

// The param a chat body with `fields` added to a valid message list is rejected for.
std::string chat_error_param(const std::string& fields) {
  Parsed p = chat(R"({"messages":[{"role":"user","content":"hi"}],)" + fields + "}");
  if (!p.error) return "<accepted>";
  EXPECT_EQ(p.error->status, 400);
  EXPECT_EQ(p.error->type, "invalid_request_error");
  return p.error->param;
}

TEST(RequestParse, ChatDefaultsAndFields) {
  Parsed p = chat(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":"hi","name":"bob"}],"unknown_field":{"x":[1,2]}})");
  ASSERT_FALSE(p.error) << p.error->message;
  EXPECT_EQ(p.req.model, "m");
  ASSERT_EQ(p.req.messages.size(), 2u);
  EXPECT_EQ(p.req.messages[0].role, "system");
  EXPECT_EQ(p.req.messages[1].content, "hi");
  EXPECT_EQ(p.req.messages[1].name.value_or(""), "bob");
  EXPECT_EQ(p.req.n, 1);
  EXPECT_FALSE(p.req.max_tokens);
  EXPECT_FALSE(p.req.stream);
  EXPECT_FALSE(p.req.seed);
  EXPECT_FLOAT_EQ(p.req.sampling.temperature, 1.0f);  // OpenAI's default
  EXPECT_FLOAT_EQ(p.req.sampling.top_p, 1.0f);
  EXPECT_TRUE(p.req.speculate);
}

TEST(RequestParse, ChatSamplingFields) {
  Parsed p = chat(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":5,
      "max_completion_tokens":7,"temperature":0,"top_p":0.5,"n":3,"stop":["a","b"],"seed":-1,
      "stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":4,
      "presence_penalty":0.5,"frequency_penalty":-0.5,"logit_bias":{"12":-100,"7":2.5},
      "user":"u","top_k":-1,"min_p":0.1,"repetition_penalty":1.2,"min_tokens":2,
      "ignore_eos":true,"stop_token_ids":[3,4],"speculation":false,"return_token_ids":true})");
  ASSERT_FALSE(p.error) << p.error->message;
  const SamplingParams& s = p.req.sampling;
  EXPECT_EQ(*p.req.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(s.temperature, 0.0f);
  EXPECT_FLOAT_EQ(s.top_p, 0.5f);
  EXPECT_EQ(p.req.n, 3);
  EXPECT_EQ(s.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*p.req.seed, ~uint64_t{0});
  EXPECT_TRUE(p.req.stream);
  EXPECT_TRUE(p.req.include_usage);
  EXPECT_TRUE(p.req.logprobs);
  EXPECT_EQ(p.req.top_logprobs, 4);
  EXPECT_FLOAT_EQ(s.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -0.5f);
  ASSERT_EQ(s.logit_bias.size(), 2u);
  EXPECT_EQ(p.req.user, "u");
  EXPECT_EQ(s.top_k, 0);
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.2f);
  EXPECT_EQ(s.min_tokens, 2);
  EXPECT_TRUE(p.req.return_token_ids);
  EXPECT_TRUE(s.ignore_eos);
  EXPECT_EQ(s.stop_token_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_FALSE(p.req.speculate);
}

TEST(RequestParse, NullMeansAbsent) {
  Parsed p = chat(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":null,
      "temperature":null,"stop":null,"seed":null,"logprobs":null,"stream_options":null})");
  ASSERT_FALSE(p.error) << p.error->message;
  EXPECT_FALSE(p.req.max_tokens);
  EXPECT_FLOAT_EQ(p.req.sampling.temperature, 1.0f);
}

TEST(RequestParse, WrongTypesNameTheParam) {
  EXPECT_EQ(chat_error_param(R"("temperature":"hot")"), "temperature");
  EXPECT_EQ(chat_error_param(R"("max_tokens":"5")"), "max_tokens");
  EXPECT_EQ(chat_error_param(R"("max_tokens":2.5)"), "max_tokens");
  EXPECT_EQ(chat_error_param(R"("n":true)"), "n");
  EXPECT_EQ(chat_error_param(R"("stream":1)"), "stream");
  EXPECT_EQ(chat_error_param(R"("stop":5)"), "stop");
  EXPECT_EQ(chat_error_param(R"("stop":["a",1])"), "stop");
  EXPECT_EQ(chat_error_param(R"("seed":"1")"), "seed");
  EXPECT_EQ(chat_error_param(R"("logprobs":1)"), "logprobs");
  EXPECT_EQ(chat_error_param(R"("logit_bias":[1])"), "logit_bias");
  EXPECT_EQ(chat_error_param(R"("logit_bias":{"abc":1})"), "logit_bias");
  EXPECT_EQ(chat_error_param(R"("logit_bias":{"5":"x"})"), "logit_bias");
  EXPECT_EQ(chat_error_param(R"("stream_options":true)"), "stream_options");
  EXPECT_EQ(chat_error_param(R"("stream_options":{"include_usage":"yes"})"), "include_usage");
  EXPECT_EQ(chat_error_param(R"("model":7)"), "model");
  EXPECT_EQ(chat_error_param(R"("user":[])"), "user");
  EXPECT_EQ(chat_error_param(R"("stop_token_ids":[1,-2])"), "stop_token_ids");
  EXPECT_EQ(chat_error_param(R"("ignore_eos":"no")"), "ignore_eos");
  EXPECT_EQ(chat_error_param(R"("speculation":"off")"), "speculation");
  EXPECT_EQ(chat_error_param(R"("return_token_ids":1)"), "return_token_ids");
  // 2.0 counts as the integer 2.
  EXPECT_EQ(chat_error_param(R"("max_tokens":2.0)"), "<accepted>");
}

TEST(RequestParse, RangesAndLimits) {
  EXPECT_EQ(chat_error_param(R"("temperature":2.5)"), "temperature");
  EXPECT_EQ(chat_error_param(R"("temperature":-0.1)"), "temperature");
  EXPECT_EQ(chat_error_param(R"("top_p":0)"), "top_p");
  EXPECT_EQ(chat_error_param(R"("top_p":1.5)"), "top_p");
  EXPECT_EQ(chat_error_param(R"("max_tokens":0)"), "max_tokens");
  EXPECT_EQ(chat_error_param(R"("max_tokens":99999999999)"), "max_tokens");
  EXPECT_EQ(chat_error_param(R"("n":0)"), "n");
  EXPECT_EQ(chat_error_param(R"("n":17)"), "n");
  EXPECT_EQ(chat_error_param(R"("presence_penalty":3)"), "presence_penalty");
  EXPECT_EQ(chat_error_param(R"("frequency_penalty":-2.5)"), "frequency_penalty");
  EXPECT_EQ(chat_error_param(R"("repetition_penalty":0)"), "repetition_penalty");
  EXPECT_EQ(chat_error_param(R"("min_p":1.5)"), "min_p");
  EXPECT_EQ(chat_error_param(R"("top_k":-2)"), "top_k");
  EXPECT_EQ(chat_error_param(R"("min_tokens":-1)"), "min_tokens");
  EXPECT_EQ(chat_error_param(R"("logit_bias":{"5":101})"), "logit_bias");
  EXPECT_EQ(chat_error_param(R"("logprobs":true,"top_logprobs":21)"), "top_logprobs");
  EXPECT_EQ(chat_error_param(R"("top_logprobs":2)"), "top_logprobs");  // needs logprobs
  EXPECT_EQ(chat_error_param(R"("best_of":3)"), "best_of");
  std::string many = R"("stop":[)";
  for (int i = 0; i < 17; ++i) many += std::string(i ? "," : "") + "\"s" + std::to_string(i) + "\"";
  EXPECT_EQ(chat_error_param(many + "]"), "stop");
  EXPECT_EQ(chat_error_param(R"("stop":")" + std::string(300, 'x') + "\""), "stop");
  Parsed p = chat(R"({"messages":[{"role":"user","content":"x"}],"stop":["", "end"]})");
  ASSERT_FALSE(p.error);
  EXPECT_EQ(p.req.sampling.stop, std::vector<std::string>{"end"});  // "" means no stop
  RequestLimits small;
  small.max_n = 2;
  EXPECT_TRUE(chat(R"({"messages":[{"role":"user","content":"x"}],"n":3})", small).error);
}

TEST(RequestParse, Messages) {
  EXPECT_EQ(chat(R"({})").error->param, "messages");
  EXPECT_EQ(chat(R"({"messages":[]})").error->param, "messages");
  EXPECT_EQ(chat(R"({"messages":"hi"})").error->param, "messages");
  EXPECT_EQ(chat(R"({"messages":[5]})").error->param, "messages[0]");
  EXPECT_EQ(chat(R"({"messages":[{"content":"x"}]})").error->param, "messages[0].role");
  EXPECT_EQ(chat(R"({"messages":[{"role":"user","content":5}]})").error->param,
            "messages[0].content");
  // Text parts are joined; null content (an assistant turn with tool calls) is empty.
  Parsed p = chat(R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},
      {"type":"text","text":"b"}]},{"role":"assistant","content":null}]})");
  ASSERT_FALSE(p.error) << p.error->message;
  EXPECT_EQ(p.req.messages[0].content, "ab");
  EXPECT_EQ(p.req.messages[1].content, "");
  Parsed img = chat(R"({"messages":[{"role":"user","content":[{"type":"image_url",
      "image_url":{"url":"http://x"}}]}]})");
  ASSERT_TRUE(img.error);
  EXPECT_EQ(img.error->param, "messages[0].content");
  EXPECT_NE(img.error->message.find("image_url"), std::string::npos);
}

// A chat body with these tools (JSON list text) and extra fields.
std::string with_tools(const std::string& tools, const std::string& fields = "") {
  return R"({"messages":[{"role":"user","content":"hi"}],"tools":)" + tools +
         (fields.empty() ? "" : "," + fields) + "}";
}

const char* kWeather = R"({"type":"function","function":{"name":"get_weather",
    "description":"Weather","parameters":{"type":"object","properties":{"unit":{"type":"string"},
    "city":{"type":"string"}},"required":["city"]},"strict":false}})";

TEST(RequestParse, ToolsKeepTheirKeyOrder) {
  Parsed p = chat(with_tools(std::string("[") + kWeather + "]", R"("parallel_tool_calls":false)"));
  ASSERT_FALSE(p.error) << p.error->message;
  ASSERT_EQ(p.req.tools.size(), 1u);
  // As sent: Hugging Face templates print each tool with tojson.
  EXPECT_EQ(p.req.tools[0].dump(),
            R"({"type":"function","function":{"name":"get_weather","description":"Weather",)"
            R"("parameters":{"type":"object","properties":{"unit":{"type":"string"},)"
            R"("city":{"type":"string"}},"required":["city"]},"strict":false}})");
  EXPECT_TRUE(p.req.tools_enabled());
  EXPECT_FALSE(p.req.parallel_tool_calls);
  EXPECT_EQ(p.req.tool_choice, ToolChoice::kAuto);
  Parsed none = chat(with_tools(std::string("[") + kWeather + "]", R"("tool_choice":"none")"));
  ASSERT_FALSE(none.error) << none.error->message;
  EXPECT_EQ(none.req.tool_choice, ToolChoice::kNone);
  EXPECT_FALSE(none.req.tools_enabled());
  Parsed empty = chat(with_tools("[]", R"("tool_choice":"auto")"));
  ASSERT_FALSE(empty.error) << empty.error->message;
  EXPECT_FALSE(empty.req.tools_enabled());
  EXPECT_FALSE(chat(with_tools("null")).error);
}

// The param of the 400 for these tools and fields.
std::string tools_error(const std::string& tools, const std::string& fields = "",
                        RequestLimits limits = {}) {
  Parsed p = chat(with_tools(tools, fields), limits);
  if (!p.error) return "<accepted>";
  EXPECT_EQ(p.error->status, 400);
  return p.error->param;
}

TEST(RequestParse, BadToolsNameTheField) {
  const std::string ok = R"({"type":"function","function":{"name":"f"}})";
  EXPECT_EQ(tools_error("[" + ok + "]"), "<accepted>");
  EXPECT_EQ(tools_error(ok), "tools");
  EXPECT_EQ(tools_error("[" + ok + ",5]"), "tools[1]");
  EXPECT_EQ(tools_error(R"([{"function":{"name":"f"}}])"), "tools[0].type");
  EXPECT_EQ(tools_error(R"([{"type":"custom","function":{"name":"f"}}])"), "tools[0].type");
  EXPECT_EQ(tools_error(R"([{"type":"function"}])"), "tools[0].function");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":"f"}])"), "tools[0].function");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{}}])"), "tools[0].function.name");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":3}}])"),
            "tools[0].function.name");
  for (const char* name : {"", "has space", "dots.no", "ünï", "a/b"}) {
    EXPECT_EQ(
        tools_error(R"([{"type":"function","function":{"name":")" + std::string(name) + "\"}}]"),
        "tools[0].function.name")
        << name;
  }
  EXPECT_EQ(
      tools_error(R"([{"type":"function","function":{"name":")" + std::string(65, 'a') + "\"}}]"),
      "tools[0].function.name");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":"A-z_09"}}])"), "<accepted>");
  EXPECT_EQ(tools_error("[" + ok + "," + ok + "," + ok + "]"), "tools[1].function.name");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":"f","description":1}}])"),
            "tools[0].function.description");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":"f","parameters":[]}}])"),
            "tools[0].function.parameters");
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":"f","strict":"yes"}}])"),
            "tools[0].function.strict");
  RequestLimits limits;
  limits.max_tools = 2;
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":"a"}},
      {"type":"function","function":{"name":"b"}},{"type":"function","function":{"name":"c"}}])",
                        "", limits),
            "tools");
  limits = {};
  limits.max_tool_object_keys = 2;
  EXPECT_EQ(tools_error(R"([{"type":"function","function":{"name":"a","parameters":{"type":
      "object","properties":{"x":{},"y":{},"z":{}}}}}])",
                        "", limits),
            "tools");
  EXPECT_EQ(tools_error("[" + ok + "]", R"("parallel_tool_calls":"yes")"), "parallel_tool_calls");
}

TEST(RequestParse, ToolChoice) {
  const std::string tools = R"([{"type":"function","function":{"name":"f"}}])";
  EXPECT_EQ(tools_error(tools, R"("tool_choice":"auto")"), "<accepted>");
  EXPECT_EQ(tools_error(tools, R"("tool_choice":"none")"), "<accepted>");
  EXPECT_EQ(tools_error(tools, R"("tool_choice":"any")"), "tool_choice");
  EXPECT_EQ(tools_error(tools, R"("tool_choice":5)"), "tool_choice");
  EXPECT_EQ(tools_error(tools, R"("tool_choice":{"type":"function"})"), "tool_choice");
  // "required" and a named function constrain the output to one Hermes call of the tools (the
  // named one), arguments by its parameters (an object when it has none).
  const std::string two = R"([{"type":"function","function":{"name":"f"}},
      {"type":"function","function":{"name":"g","parameters":{"type":"object",
      "properties":{"x":{"type":"integer"}},"required":["x"]}}}])";
  Parsed required = chat(with_tools(two, R"("tool_choice":"required")"));
  ASSERT_FALSE(required.error) << required.error->message;
  EXPECT_EQ(required.req.tool_choice, ToolChoice::kRequired);
  ASSERT_TRUE(required.req.grammar);
  EXPECT_EQ(required.req.grammar_param, "tool_choice");
  EXPECT_EQ(required.req.grammar->prefix, "<tool_call>\n");
  EXPECT_EQ(required.req.grammar->suffix, "\n</tool_call>");
  const nlohmann::json any = nlohmann::json::parse(required.req.grammar->text);
  ASSERT_EQ(any["anyOf"].size(), 2u) << any.dump();
  EXPECT_EQ(any["anyOf"][1]["properties"]["name"]["enum"][0], "g");
  EXPECT_EQ(any["anyOf"][1]["properties"]["arguments"]["required"][0], "x");
  EXPECT_EQ(any["anyOf"][0]["properties"]["arguments"]["type"], "object");
  Parsed named =
      chat(with_tools(two, R"("tool_choice":{"type":"function","function":{"name":"f"}})"));
  ASSERT_FALSE(named.error) << named.error->message;
  EXPECT_EQ(named.req.tool_choice, ToolChoice::kNamed);
  ASSERT_TRUE(named.req.grammar);
  const nlohmann::json one = nlohmann::json::parse(named.req.grammar->text);
  EXPECT_EQ(one["properties"]["name"]["enum"][0], "f") << one.dump();
  // Required without tools, and together with another constraint: 400s.
  EXPECT_EQ(chat_error_param(R"("tool_choice":"required")"), "tool_choice");
  Parsed both = chat(with_tools(tools, R"("tool_choice":"required","guided_regex":"a")"));
  ASSERT_TRUE(both.error);
  EXPECT_EQ(both.error->param, "guided_regex");
  // A named function must be among the tools.
  Parsed unknown =
      chat(with_tools(tools, R"("tool_choice":{"type":"function","function":{"name":"g"}})"));
  ASSERT_TRUE(unknown.error);
  EXPECT_EQ(unknown.error->param, "tool_choice");
  EXPECT_NE(unknown.error->message.find("'g'"), std::string::npos) << unknown.error->message;
}

TEST(RequestParse, ToolCallsAndResultsInMessages) {
  Parsed p = chat(R"({"messages":[{"role":"user","content":"weather?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
       "function":{"name":"get_weather","arguments":"{\"unit\": \"c\", \"city\": \"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"22"}]})");
  ASSERT_FALSE(p.error) << p.error->message;
  ASSERT_EQ(p.req.message_tools.size(), 3u);
  EXPECT_FALSE(p.req.tools_enabled());
  EXPECT_TRUE(p.req.has_tool_messages());
  ASSERT_EQ(p.req.message_tools[1].tool_calls.size(), 1u);
  // The arguments text becomes an object, in its key order, as the templates expect.
  EXPECT_EQ(p.req.message_tools[1].tool_calls[0].dump(),
            R"({"id":"call_1","type":"function","function":{"name":"get_weather",)"
            R"("arguments":{"unit":"c","city":"Paris"}}})");
  EXPECT_EQ(p.req.message_tools[2].tool_call_id.value_or(""), "call_1");
  EXPECT_EQ(p.req.messages[1].content, "");

  const auto param = [](const std::string& messages) {
    Parsed q = chat(R"({"messages":)" + messages + "}");
    return q.error ? q.error->param : "<accepted>";
  };
  const std::string call =
      R"({"id":"c","type":"function","function":{"name":"f","arguments":"{}"}})";
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[)" + call + "]}]"), "<accepted>");
  EXPECT_EQ(param(R"([{"role":"user","content":"x","tool_calls":[)" + call + "]}]"),
            "messages[0].tool_calls");
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":{}}])"), "messages[0].tool_calls");
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[5]}])"), "messages[0].tool_calls[0]");
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[{"type":"function",
      "function":{"name":"f","arguments":"{}"}}]}])"),
            "messages[0].tool_calls[0].id");
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[{"id":"c","type":"x",
      "function":{"name":"f","arguments":"{}"}}]}])"),
            "messages[0].tool_calls[0].type");
  EXPECT_EQ(
      param(R"([{"role":"assistant","tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}])"),
      "messages[0].tool_calls[0].function.name");
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f"}}]}])"),
            "messages[0].tool_calls[0].function.arguments");
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f",
      "arguments":{"a":1}}}]}])"),
            "messages[0].tool_calls[0].function.arguments");
  // Arguments that are not JSON: a 400 naming the message and the call.
  Parsed bad = chat(R"({"messages":[{"role":"user","content":"x"},{"role":"assistant",
      "tool_calls":[)" +
                    call + R"(,{"id":"d","function":{"name":"f","arguments":"{\"a\": "}}]}]})");
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->param, "messages[1].tool_calls[1].function.arguments");
  EXPECT_NE(bad.error->message.find("not valid JSON"), std::string::npos) << bad.error->message;
  const std::string deep = std::string(80, '[') + std::string(80, ']');
  EXPECT_EQ(param(R"([{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f",
      "arguments":")" +
                  deep + "\"}}]}]"),
            "messages[0].tool_calls[0].function.arguments");
  EXPECT_EQ(param(R"([{"role":"tool","tool_call_id":5,"content":"x"}])"),
            "messages[0].tool_call_id");
  EXPECT_EQ(param(R"([{"role":"user","tool_call_id":"c","content":"x"}])"),
            "messages[0].tool_call_id");
}

TEST(RequestParse, StructuredOutputsBecomeOneGrammar) {
  auto grammar_of = [](const std::string& fields) {
    Parsed p = chat(R"({"messages":[{"role":"user","content":"x"}],)" + fields + "}");
    EXPECT_FALSE(p.error) << fields << ": " << p.error->message;
    return p.req;
  };
  EXPECT_FALSE(grammar_of(R"("response_format":{"type":"text"})").grammar);
  EXPECT_FALSE(grammar_of(R"("guided_json":null)").grammar);  // null: absent
  ParsedRequest r = grammar_of(R"("response_format":{"type":"json_object"})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::JsonObject);
  EXPECT_EQ(r.grammar_param, "response_format");
  r = grammar_of(
      R"("response_format":{"type":"json_schema","json_schema":{"name":"p","strict":false,
      "schema":{"type":"object","properties":{"a":{"type":"integer"}}}}})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::JsonSchema);
  EXPECT_FALSE(r.grammar->strict);
  EXPECT_EQ(nlohmann::json::parse(r.grammar->text)["properties"]["a"]["type"], "integer");
  EXPECT_EQ(r.grammar_param, "response_format.json_schema.schema");
  // Keys keep the client's order: the output's properties come in the schema's order.
  r = grammar_of(R"("guided_json":{"type":"object","properties":{"zeta":{},"alpha":{}}})");
  ASSERT_TRUE(r.grammar);
  EXPECT_LT(r.grammar->text.find("zeta"), r.grammar->text.find("alpha")) << r.grammar->text;
  EXPECT_LT(r.grammar->text.find("type"), r.grammar->text.find("properties")) << r.grammar->text;
  // guided_json as an object or as its text.
  r = grammar_of(R"("guided_json":"{\"type\":\"string\"}")");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::JsonSchema);
  EXPECT_TRUE(r.grammar->strict);
  r = grammar_of(R"("guided_regex":"[0-9]+")");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::Regex);
  EXPECT_EQ(r.grammar->text, "[0-9]+");
  r = grammar_of(R"("guided_choice":["yes","no"])");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::Choice);
  EXPECT_EQ(r.grammar->choices, (std::vector<std::string>{"yes", "no"}));
  r = grammar_of(R"("guided_grammar":"root ::= \"x\"")");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::Ebnf);
  r = grammar_of(R"("structured_outputs":{"choice":["a"]})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar_param, "structured_outputs.choice");
  // Completions share the parser.
  Parsed c = completion(R"({"prompt":"x","guided_regex":"a","response_format":{"type":"text"}})");
  ASSERT_FALSE(c.error) << c.error->message;
  ASSERT_TRUE(c.req.grammar);
  EXPECT_EQ(c.req.grammar->kind, GrammarKind::Regex);
}

TEST(RequestParse, BadStructuredOutputsAre400sNamingTheField) {
  EXPECT_EQ(chat_error_param(R"("response_format":{"type":"xml"})"), "response_format.type");
  EXPECT_EQ(chat_error_param(R"("response_format":"json")"), "response_format");
  EXPECT_EQ(chat_error_param(R"("response_format":{})"), "response_format.type");
  EXPECT_EQ(chat_error_param(R"("response_format":{"type":"json_schema"})"),
            "response_format.json_schema");
  EXPECT_EQ(chat_error_param(R"("response_format":{"type":"json_schema","json_schema":{}})"),
            "response_format.json_schema.schema");
  EXPECT_EQ(
      chat_error_param(R"("response_format":{"type":"json_schema","json_schema":{"schema":[1]}})"),
      "response_format.json_schema.schema");
  EXPECT_EQ(chat_error_param(
                R"("response_format":{"type":"json_schema","json_schema":{"schema":{},
                "strict":"yes"}})"),
            "response_format.json_schema.strict");
  EXPECT_EQ(chat_error_param(R"("guided_json":"{not json")"), "guided_json");
  EXPECT_EQ(chat_error_param(R"("guided_json":5)"), "guided_json");
  EXPECT_EQ(chat_error_param(R"("guided_regex":"")"), "guided_regex");
  EXPECT_EQ(chat_error_param(R"("guided_choice":[])"), "guided_choice");
  EXPECT_EQ(chat_error_param(R"("guided_choice":["a",3])"), "guided_choice[1]");
  EXPECT_EQ(chat_error_param(R"("guided_grammar":7)"), "guided_grammar");
  EXPECT_EQ(chat_error_param(R"("structured_outputs":{"xml":"a"})"), "structured_outputs.xml");
  // Two guides: a 400 naming the second.
  Parsed two = chat(R"({"messages":[{"role":"user","content":"x"}],"guided_regex":"a",
      "response_format":{"type":"json_object"}})");
  ASSERT_TRUE(two.error);
  EXPECT_EQ(two.error->param, "guided_regex");
  EXPECT_NE(two.error->message.find("at most one"), std::string::npos) << two.error->message;
  EXPECT_EQ(chat_error_param(R"("guided_choice":["a"],"guided_regex":"a")"), "guided_choice");
  // min_tokens would hold back the end the grammar needs.
  EXPECT_EQ(chat_error_param(R"("guided_choice":["a"],"min_tokens":2)"), "min_tokens");
}

TEST(RequestParse, CompletionPrompts) {
  Parsed one = completion(R"({"prompt":"hello","logprobs":2,"echo":false})");
  ASSERT_FALSE(one.error) << one.error->message;
  ASSERT_EQ(one.req.prompts.size(), 1u);
  EXPECT_EQ(one.req.prompts[0].text, "hello");
  EXPECT_TRUE(one.req.logprobs);
  EXPECT_EQ(one.req.top_logprobs, 2);
  Parsed many = completion(R"({"prompt":["a","b","c"]})");
  ASSERT_FALSE(many.error);
  EXPECT_EQ(many.req.prompts.size(), 3u);
  Parsed ids = completion(R"({"prompt":[1,2,3]})");
  ASSERT_FALSE(ids.error);
  ASSERT_EQ(ids.req.prompts.size(), 1u);
  EXPECT_TRUE(ids.req.prompts[0].is_tokens);
  EXPECT_EQ(ids.req.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  Parsed lists = completion(R"({"prompt":[[1,2],[3]]})");
  ASSERT_FALSE(lists.error);
  EXPECT_EQ(lists.req.prompts.size(), 2u);
  Parsed zero = completion(R"({"prompt":"x","logprobs":0})");
  ASSERT_FALSE(zero.error);
  EXPECT_TRUE(zero.req.logprobs);  // 0: the chosen token's logprob only
  EXPECT_EQ(zero.req.top_logprobs, 0);

  EXPECT_EQ(completion(R"({})").error->param, "prompt");
  EXPECT_EQ(completion(R"({"prompt":[]})").error->param, "prompt");
  EXPECT_EQ(completion(R"({"prompt":["a",1]})").error->param, "prompt");
  EXPECT_EQ(completion(R"({"prompt":[1,"a"]})").error->param, "prompt");
  EXPECT_EQ(completion(R"({"prompt":[[1],[]]})").error->param, "prompt");
  EXPECT_EQ(completion(R"({"prompt":{"a":1}})").error->param, "prompt");
  EXPECT_EQ(completion(R"({"prompt":"x","logprobs":true})").error->param, "logprobs");
  EXPECT_EQ(completion(R"({"prompt":"x","echo":true,"logprobs":1})").error->param, "echo");
  EXPECT_EQ(completion(R"({"prompt":"x","suffix":"y"})").error->param, "suffix");
  // n times prompts is bounded.
  RequestLimits limits;
  limits.max_choices = 4;
  EXPECT_EQ(completion(R"({"prompt":["a","b","c"],"n":2})", limits).error->param, "n");
}

TEST(RequestParse, MalformedBodies) {
  EXPECT_TRUE(chat("").error);
  EXPECT_TRUE(chat("{").error);
  EXPECT_TRUE(chat("[1,2]").error);
  EXPECT_TRUE(chat("\"text\"").error);
  EXPECT_TRUE(chat("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}").error);
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_FALSE(json_depth_within(deep, 64));
  EXPECT_TRUE(json_depth_within("{\"a\":\"[[[[[[[[[[[[[[[[\"}", 2));  // brackets in strings
  Parsed p = chat("{\"messages\":" + deep + "}");
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->status, 400);
}

}  // namespace
}  // namespace dspark::server
