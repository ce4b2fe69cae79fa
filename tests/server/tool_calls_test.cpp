// The Hermes tool-call parser (whole outputs and one character at a time, several calls, invalid
// blocks, text around calls, "<tool" prefixes that are not calls) and the key-order-keeping
// JSON parser behind tools and arguments.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <limits>

#include "server/ordered_json.h"
#include "server/tool_calls.h"

namespace dspark::server {
namespace {

// The parser fed piece by piece (pieces of `step` bytes), deltas joined.
ToolCallParser::Delta feed_in_pieces(std::string_view text, size_t step,
                                     size_t max_calls = std::numeric_limits<size_t>::max()) {
  ToolCallParser parser(max_calls);
  ToolCallParser::Delta all;
  auto add = [&](ToolCallParser::Delta d) {
    all.content += d.content;
    for (ToolCall& c : d.calls) all.calls.push_back(std::move(c));
  };
  for (size_t at = 0; at < text.size(); at += step) add(parser.feed(text.substr(at, step)));
  add(parser.finish());
  return all;
}

const char* kTwoCalls =
    "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
    "\"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", "
    "\"arguments\": {\"zone\": \"CET\"}}\n</tool_call>";

TEST(ToolCalls, WholeOutput) {
  const ParsedOutput out = parse_tool_calls(kTwoCalls);
  EXPECT_EQ(out.content, "Let me check.");
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
  // The arguments keep the model's key order.
  EXPECT_EQ(out.calls[0].arguments, R"({"city":"Paris","unit":"c"})");
  EXPECT_EQ(out.calls[1].name, "get_time");
  EXPECT_EQ(out.calls[1].arguments, R"({"zone":"CET"})");
  for (const ToolCall& c : out.calls) {
    ASSERT_EQ(c.id.size(), 5u + 24u);
    EXPECT_EQ(c.id.rfind("call_", 0), 0u);
    for (char ch : c.id.substr(5)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)));
  }
  EXPECT_NE(out.calls[0].id, out.calls[1].id);
}

TEST(ToolCalls, OneCharacterAtATimeGivesTheSame) {
  for (size_t step : {size_t(1), size_t(2), size_t(5), size_t(11), size_t(1000)}) {
    const ToolCallParser::Delta d = feed_in_pieces(kTwoCalls, step);
    EXPECT_EQ(d.content, "Let me check.") << "step " << step;
    ASSERT_EQ(d.calls.size(), 2u) << "step " << step;
    EXPECT_EQ(d.calls[0].arguments, R"({"city":"Paris","unit":"c"})");
    EXPECT_EQ(d.calls[1].name, "get_time");
  }
}

TEST(ToolCalls, ContentComesOutAsSoonAsItCannotBeATag) {
  ToolCallParser parser;
  EXPECT_EQ(parser.feed("Hello").content, "Hello");
  EXPECT_EQ(parser.feed(" world <to").content, " world");  // "<to" and the space held
  ToolCallParser::Delta d = parser.feed("ol>x");           // "<tool>" is not "<tool_call>"
  EXPECT_EQ(d.content, " <tool>x");
  EXPECT_TRUE(d.calls.empty());
  d = parser.feed(" <tool_call>{\"name\": \"f\"}");
  EXPECT_EQ(d.content, "");  // the space and the open block are held
  d = parser.feed("</tool_call> after");
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0].name, "f");
  EXPECT_EQ(d.calls[0].arguments, "{}");  // no arguments: an empty object
  EXPECT_EQ(d.content, "  after");        // held whitespace goes out before more text
  EXPECT_EQ(parser.finish().content, "");
  EXPECT_EQ(parser.n_calls(), 1u);
}

TEST(ToolCalls, TextAroundCalls) {
  const ParsedOutput out = parse_tool_calls(
      "  Before.\n<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\nMiddle "
      "text.\n<tool_call>{\"name\": \"b\", \"arguments\": {\"x\": [1, 2.5, null]}}</tool_call>"
      "\n\nAfter.\n");
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.content, "Before.\n\nMiddle text.\n\n\nAfter.");
  EXPECT_EQ(out.calls[1].arguments, R"({"x":[1,2.5,null]})");
}

TEST(ToolCalls, OnlyCallsGiveEmptyContent) {
  const ParsedOutput out = parse_tool_calls(
      "\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"q\": \"é ✓\"}}\n"
      "</tool_call>\n");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.content, "");
  EXPECT_EQ(out.calls[0].arguments, "{\"q\":\"é ✓\"}");
}

TEST(ToolCalls, InvalidBlocksStayText) {
  const std::string bad_json = "<tool_call>{\"name\": \"a\", \"arguments\": {</tool_call>";
  const std::string no_name = "<tool_call>{\"arguments\": {}}</tool_call>";
  const std::string not_object = "<tool_call>[1, 2]</tool_call>";
  const std::string empty_name = "<tool_call>{\"name\": \"\"}</tool_call>";
  for (const std::string& block : {bad_json, no_name, not_object, empty_name}) {
    const std::string text = "x " + block + " y";
    const ParsedOutput out = parse_tool_calls(text);
    EXPECT_TRUE(out.calls.empty()) << block;
    EXPECT_EQ(out.content, text);  // no calls: the text exactly, whitespace included
    const ToolCallParser::Delta d = feed_in_pieces(text, 1);
    EXPECT_EQ(d.content, text);
  }
  // An invalid block next to a valid one: the valid one is a call, the other text.
  const ParsedOutput mixed =
      parse_tool_calls(no_name + "\n<tool_call>{\"name\": \"ok\"}</tool_call>");
  ASSERT_EQ(mixed.calls.size(), 1u);
  EXPECT_EQ(mixed.calls[0].name, "ok");
  EXPECT_EQ(mixed.content, no_name);
}

TEST(ToolCalls, UnfinishedOutputIsText) {
  // Cut off inside a block (max_tokens): the block is text.
  const std::string cut = "Sure. <tool_call>\n{\"name\": \"get_weather\", \"argu";
  ParsedOutput out = parse_tool_calls(cut);
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, cut);
  EXPECT_EQ(feed_in_pieces(cut, 1).content, cut);
  // A held "<tool_c" that never completes, and trailing whitespace with no call.
  out = parse_tool_calls("a <tool_c");
  EXPECT_EQ(out.content, "a <tool_c");
  EXPECT_EQ(feed_in_pieces("ends with space \n", 1).content, "ends with space \n");
  EXPECT_EQ(feed_in_pieces("<", 1).content, "<");
  EXPECT_EQ(feed_in_pieces("", 1).content, "");
}

TEST(ToolCalls, PrefixesThatAreNotCalls) {
  for (const char* text : {"<tool", "<tool_", "a<toolbox>b", "<<tool_call", "x < y", "<tool_call",
                           "</tool_call>", "<tool_call >{\"name\": \"a\"}</tool_call>"}) {
    EXPECT_EQ(feed_in_pieces(text, 1).content, text);
    EXPECT_TRUE(feed_in_pieces(text, 1).calls.empty()) << text;
    EXPECT_EQ(parse_tool_calls(text).content, text);
  }
  // "<<tool_call>": the first "<" is text, then a real block.
  const ToolCallParser::Delta d = feed_in_pieces("<<tool_call>{\"name\": \"f\"}</tool_call>", 1);
  EXPECT_EQ(d.content, "<");
  ASSERT_EQ(d.calls.size(), 1u);
}

TEST(ToolCalls, ParametersAndOtherArgumentShapes) {
  ParsedOutput out = parse_tool_calls(R"(<tool_call>{"name": "f", "parameters": {"b": 1, "a": 2}})"
                                      "</tool_call>");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].arguments, R"({"b":1,"a":2})");
  out = parse_tool_calls(R"(<tool_call>{"name": "f", "arguments": "{\"a\": 1}"}</tool_call>)");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].arguments, R"("{\"a\": 1}")");  // a string stays a JSON string
}

TEST(ToolCalls, ParallelToolCallsFalseKeepsTheFirst) {
  const ParsedOutput out = parse_tool_calls(kTwoCalls, 1);
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
  EXPECT_EQ(out.content, "Let me check.");
  const ToolCallParser::Delta d = feed_in_pieces(kTwoCalls, 3, 1);
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.content, "Let me check.");
}

TEST(ToolCalls, LongBlocksAreSearchedOnce) {
  // A block fed token by token is not searched from its start on every piece.
  std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"";
  text += std::string(200000, 'x');
  text += "\"}}</tool_call>";
  const auto start = std::chrono::steady_clock::now();
  const ToolCallParser::Delta d = feed_in_pieces(text, 3);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0].arguments.size(), 200000u + 8u);
  EXPECT_LT(s, 2.0);
}

TEST(OrderedJson, KeepsKeyOrderAndLastDuplicate) {
  OrderedJson j;
  ASSERT_EQ(parse_ordered(R"({"z": 1, "a": {"y": [1, {"c": 2, "b": 3}], "x": null}, "z": 5})",
                          OrderedLimits{}, &j),
            "");
  // The duplicate "z" keeps its first place and its last value, as Python's json.loads.
  EXPECT_EQ(j.dump(), R"({"z":5,"a":{"y":[1,{"c":2,"b":3}],"x":null}})");
  EXPECT_EQ(parse_ordered("[1, 2", OrderedLimits{}, &j), "not valid JSON");
  EXPECT_EQ(parse_ordered("{} x", OrderedLimits{}, &j), "not valid JSON");
  EXPECT_EQ(parse_ordered("\"\xff\"", OrderedLimits{}, &j), "not valid JSON");
  EXPECT_EQ(parse_ordered("[[[1]]]", OrderedLimits{2, 10}, &j), "nested deeper than 2 levels");
  EXPECT_EQ(parse_ordered(R"({"a":1,"b":2,"c":3})", OrderedLimits{8, 2}, &j),
            "an object with more than 2 keys");
  EXPECT_EQ(parse_ordered(R"({"a":1,"a":2,"a":3})", OrderedLimits{8, 1}, &j), "");
  EXPECT_EQ(j.dump(), R"({"a":3})");
}

TEST(OrderedJson, MemberOfABody) {
  OrderedJson j;
  const std::string body = R"({"junk": {"q": [1, {"r": 2}]}, "tools": [{"type": "function",
      "function": {"name": "f", "parameters": {"type": "object"}}}], "n": 2})";
  ASSERT_EQ(parse_ordered_member(body, "tools", OrderedLimits{}, &j), "");
  EXPECT_EQ(j.dump(),
            R"([{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])");
  ASSERT_EQ(parse_ordered_member(body, "absent", OrderedLimits{}, &j), "");
  EXPECT_TRUE(j.is_null());
  EXPECT_EQ(parse_ordered_member("[1]", "tools", OrderedLimits{}, &j), "not a JSON object");
  // The depth limit applies to the member; other members are skipped, not checked.
  ASSERT_EQ(parse_ordered_member(R"({"a": [[[[1]]]], "tools": [[1]]})", "tools",
                                 OrderedLimits{2, 10}, &j),
            "");
  EXPECT_EQ(parse_ordered_member(R"({"tools": [[[1]]]})", "tools", OrderedLimits{2, 10}, &j),
            "nested deeper than 2 levels");
}

TEST(OrderedJson, ManyKeysAndDuplicatesAreLinear) {
  // nlohmann's ordered_json parser would search every key on every insertion.
  std::string text = "{";
  for (int i = 0; i < 200000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i % 1000) + "\":1";
  text += "}";
  OrderedJson j;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(parse_ordered(text, OrderedLimits{}, &j), "");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(j.size(), 1000u);
  EXPECT_LT(s, 2.0);
}

}  // namespace
}  // namespace dspark::server
