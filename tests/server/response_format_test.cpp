// Response objects and stream chunks in OpenAI's exact shapes, logprobs of both endpoints,
// usage, the dspark extension, error bodies, and JSON that stays valid for any token bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/response_format.h"

namespace dspark::server {
namespace {

using json = nlohmann::json;

// Token i spells "t<i>"; token 99 is a lone UTF-8 lead byte.
class FakeTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view, bool, bool) const override { return {}; }
  std::vector<int32_t> encode_with_content(std::string_view, std::span<const ByteSpan>,
                                           bool) const override {
    return {};
  }
  std::string token_bytes(int32_t id, bool) const override {
    return id == 99 ? std::string("\xe2") : "t" + std::to_string(id);
  }
  TokenizerKind kind() const override { return TokenizerKind::ByteLevelBpe; }
  int32_t vocab_size() const override { return 100; }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return -1; }
  const std::vector<int32_t>& stop_ids() const override { return stops_; }
  bool is_special(int32_t) const override { return false; }
  int32_t token_id(std::string_view) const override { return -1; }

 private:
  std::vector<int32_t> stops_;
};

ResponseMeta meta(Endpoint endpoint) {
  ResponseMeta m;
  m.endpoint = endpoint;
  m.id = new_response_id(endpoint);
  m.created = 1700000000;
  m.model = "tiny";
  return m;
}

json from_sse(const std::string& frame) {
  EXPECT_EQ(frame.rfind("data: ", 0), 0u) << frame;
  EXPECT_EQ(frame.substr(frame.size() - 2), "\n\n");
  return json::parse(frame.substr(6, frame.size() - 8));
}

TokenLogprobs lp(int32_t token, float logprob, std::vector<std::pair<int32_t, float>> top) {
  TokenLogprobs t;
  t.token = token;
  t.logprob = logprob;
  t.top = std::move(top);
  return t;
}

TEST(ResponseFormat, Ids) {
  const std::string chat = new_response_id(Endpoint::kChat);
  const std::string cmpl = new_response_id(Endpoint::kCompletion);
  EXPECT_EQ(chat.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(cmpl.rfind("cmpl-", 0), 0u);
  EXPECT_EQ(chat.size(), 9u + 24u);
  EXPECT_NE(chat, new_response_id(Endpoint::kChat));
}

TEST(ResponseFormat, ChatCompletionObject) {
  FakeTokenizer tok;
  ChoiceResult a, b;
  a.index = 0;
  a.text = "hello";
  a.final.reason = engine::FinishReason::kStop;
  a.final.spec.n_rounds = 4;
  a.final.spec.n_drafted = 10;
  a.final.spec.n_accepted = 6;
  b.index = 1;
  b.text = "bye";
  b.final.reason = engine::FinishReason::kLength;
  const json r = json::parse(full_response(meta(Endpoint::kChat), {a, b}, false, Usage{7, 9}, tok));
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_EQ(r["created"], 1700000000);
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "hello"}}));
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(r["usage"],
            (json{{"prompt_tokens", 7}, {"completion_tokens", 9}, {"total_tokens", 16}}));
  EXPECT_EQ(r["dspark"]["drafted"], 10);
  EXPECT_EQ(r["dspark"]["accepted"], 6);
  EXPECT_DOUBLE_EQ(r["dspark"]["mean_accepted_length"].get<double>(), 10.0 / 4.0);
}

TEST(ResponseFormat, CompletionObjectWithLogprobsAndEcho) {
  FakeTokenizer tok;
  ChoiceResult c;
  c.text = "ab t1t2";
  c.echo_bytes = 3;  // "ab "
  c.logprobs = {lp(1, -0.5f, {{1, -0.5f}, {2, -1.5f}}), lp(2, -0.25f, {{2, -0.25f}})};
  const json r =
      json::parse(full_response(meta(Endpoint::kCompletion), {c}, true, Usage{2, 2}, tok));
  EXPECT_EQ(r["object"], "text_completion");
  const json& choice = r["choices"][0];
  EXPECT_EQ(choice["text"], "ab t1t2");
  const json& l = choice["logprobs"];
  EXPECT_EQ(l["tokens"], (json{"t1", "t2"}));
  EXPECT_EQ(l["token_logprobs"], (json{-0.5, -0.25}));
  EXPECT_EQ(l["top_logprobs"][0], (json{{"t1", -0.5}, {"t2", -1.5}}));
  EXPECT_EQ(l["text_offset"], (json{3, 5}));
}

TEST(ResponseFormat, ChatLogprobs) {
  FakeTokenizer tok;
  int64_t offset = 0;
  const json l =
      logprobs_json(Endpoint::kChat, {lp(5, -1.0f, {{5, -1.0f}, {6, -2.0f}})}, tok, &offset);
  ASSERT_EQ(l["content"].size(), 1u);
  const json& t = l["content"][0];
  EXPECT_EQ(t["token"], "t5");
  EXPECT_EQ(t["logprob"], -1.0);
  EXPECT_EQ(t["bytes"], (json{'t', '5'}));
  ASSERT_EQ(t["top_logprobs"].size(), 2u);
  EXPECT_EQ(t["top_logprobs"][1]["token"], "t6");
  EXPECT_EQ(t["top_logprobs"][1]["logprob"], -2.0);
}

TEST(ResponseFormat, InvalidUtf8AndInfinityStayValidJson) {
  FakeTokenizer tok;
  int64_t offset = 0;
  const json l = logprobs_json(Endpoint::kChat,
                               {lp(99, -std::numeric_limits<float>::infinity(), {})}, tok, &offset);
  const json& t = l["content"][0];
  EXPECT_EQ(t["logprob"], -9999.0);
  EXPECT_EQ(t["token"], "bytes:\\xe2");  // a partial character, spelled as OpenAI does
  EXPECT_EQ(t["bytes"], (json{0xe2}));   // the raw byte survives in "bytes"
  // The text chunk serialises the lone byte as U+FFFD instead of throwing.
  const json c = from_sse(text_chunk(meta(Endpoint::kChat), 0, "x\xe2", l, false));
  EXPECT_EQ(c["choices"][0]["delta"]["content"], "x\xef\xbf\xbd");
}

TEST(ResponseFormat, ChatStreamChunks) {
  const ResponseMeta m = meta(Endpoint::kChat);
  const json role = from_sse(role_chunk(m, 0, false));
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["id"], m.id);
  EXPECT_EQ(role["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(role.contains("usage"));

  const json text = from_sse(text_chunk(m, 2, "hi", nullptr, true));
  EXPECT_EQ(text["choices"][0]["index"], 2);
  EXPECT_EQ(text["choices"][0]["delta"], (json{{"content", "hi"}}));
  EXPECT_TRUE(text["usage"].is_null());  // include_usage: null until the usage chunk
  ASSERT_TRUE(text.contains("usage"));

  engine::FinalRecord final;
  final.reason = engine::FinishReason::kLength;
  final.spec.n_drafted = 3;
  const json fin = from_sse(finish_chunk(m, 1, final, false));
  EXPECT_EQ(fin["choices"][0]["delta"], json::object());
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(fin["dspark"]["drafted"], 3);

  const json usage = from_sse(usage_chunk(m, Usage{3, 4}, engine::SpecStats{}));
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  EXPECT_EQ(usage["dspark"]["mean_accepted_length"], 1.0);
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
}

TEST(ResponseFormat, ToolCalls) {
  FakeTokenizer tok;
  ChoiceResult a, b, c;
  a.index = 0;
  a.final.reason = engine::FinishReason::kStop;
  a.tool_calls = {ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"}};
  b.index = 1;
  b.text = "Checking.";
  b.final.reason = engine::FinishReason::kStop;
  b.tool_calls = {ToolCall{"call_2", "f", "{}"}, ToolCall{"call_3", "g", R"({"a":1})"}};
  c.index = 2;
  c.text = "no calls";
  c.final.reason = engine::FinishReason::kStop;
  const json r =
      json::parse(full_response(meta(Endpoint::kChat), {a, b, c}, false, Usage{1, 2}, tok));
  const json& m0 = r["choices"][0]["message"];
  EXPECT_TRUE(m0["content"].is_null());  // only calls: content null, as OpenAI sends it
  EXPECT_EQ(m0["tool_calls"],
            json::parse(R"([{"id":"call_1","type":"function","function":{"name":"get_weather",
                "arguments":"{\"city\":\"Paris\"}"}}])"));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(r["choices"][1]["message"]["content"], "Checking.");
  EXPECT_EQ(r["choices"][1]["message"]["tool_calls"].size(), 2u);
  EXPECT_EQ(r["choices"][1]["message"]["tool_calls"][1]["function"]["name"], "g");
  EXPECT_FALSE(r["choices"][2]["message"].contains("tool_calls"));
  EXPECT_EQ(r["choices"][2]["finish_reason"], "stop");

  const ResponseMeta m = meta(Endpoint::kChat);
  const json chunk = from_sse(tool_call_chunk(m, 1, 2, b.tool_calls[1], true));
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["choices"][0]["index"], 1);
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk["choices"][0]["delta"],
            json::parse(R"({"tool_calls":[{"index":2,"id":"call_3","type":"function",
                "function":{"name":"g","arguments":"{\"a\":1}"}}]})"));
  EXPECT_TRUE(chunk.contains("usage"));
  engine::FinalRecord final;
  final.reason = engine::FinishReason::kStop;
  EXPECT_EQ(from_sse(finish_chunk(m, 0, final, false, true))["choices"][0]["finish_reason"],
            "tool_calls");
  EXPECT_EQ(from_sse(finish_chunk(m, 0, final, false, false))["choices"][0]["finish_reason"],
            "stop");
  // A call before the length limit cut the output: the reason stays "length".
  final.reason = engine::FinishReason::kLength;
  EXPECT_EQ(finish_reason(final, true), std::string("length"));
}

TEST(ResponseFormat, CompletionStreamChunks) {
  const ResponseMeta m = meta(Endpoint::kCompletion);
  const json text = from_sse(text_chunk(m, 0, "abc", nullptr, false));
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["text"], "abc");
  engine::FinalRecord final;
  final.reason = engine::FinishReason::kStop;
  const json fin = from_sse(finish_chunk(m, 0, final, false));
  EXPECT_EQ(fin["choices"][0]["text"], "");
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");
}

TEST(ResponseFormat, Errors) {
  const json e = json::parse(error_body(bad_request("bad 'n'", "n", "code_x")));
  EXPECT_EQ(e, (json{{"error",
                      {{"message", "bad 'n'"},
                       {"type", "invalid_request_error"},
                       {"param", "n"},
                       {"code", "code_x"}}}}));
  const json nulls = json::parse(error_body(ApiError{500, "boom", "server_error", "", ""}));
  EXPECT_TRUE(nulls["error"]["param"].is_null());
  EXPECT_TRUE(nulls["error"]["code"].is_null());
  const http::Response r = error_response(ApiError{404, "nope", "not_found_error", "", ""});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  const json chunk = from_sse(error_chunk(ApiError{500, "x", "server_error", "", ""}));
  EXPECT_EQ(chunk["error"]["message"], "x");
}

TEST(ResponseFormat, SpecAggregation) {
  engine::SpecStats a, b, sum;
  a.n_rounds = 2;
  a.n_accepted = 3;
  a.accepted_at = {2, 1};
  b.n_rounds = 2;
  b.n_accepted = 1;
  b.accepted_at = {1, 0, 0};
  add_spec(a, &sum);
  add_spec(b, &sum);
  EXPECT_EQ(sum.n_rounds, 4);
  EXPECT_EQ(sum.accepted_at, (std::vector<int64_t>{3, 1, 0}));
  EXPECT_DOUBLE_EQ(mean_accepted_length(sum), 2.0);
  EXPECT_DOUBLE_EQ(mean_accepted_length(engine::SpecStats{}), 1.0);
}

}  // namespace
}  // namespace dspark::server
