// Tool calls in a model's output, in the Hermes format that Qwen2.5, Qwen3 and Hermes models
// write (and their chat templates describe):
//     <tool_call>
//     {"name": "get_weather", "arguments": {"city": "Paris"}}
//     </tool_call>
// possibly several, with text around them. The parser is incremental, for streaming: text
// outside the blocks comes out as soon as it cannot be the start of "<tool_call>", each block
// comes out whole once closed. A block whose JSON is invalid or has no "name" stays text.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace dspark::server {

struct ToolCall {
  std::string id;         // "call_..." (set by the server, not by the parser)
  std::string name;       // the function's name
  std::string arguments;  // the arguments object as JSON text
};

// A fresh tool call id: "call_" and 24 random letters and digits.
std::string new_tool_call_id();

class ToolCallParser {
 public:
  // Calls after the first max_calls are dropped (parallel_tool_calls: false keeps one).
  explicit ToolCallParser(size_t max_calls = std::numeric_limits<size_t>::max());

  // What one piece of output added: text to show and completed calls (the text came first).
  struct Delta {
    std::string content;
    std::vector<ToolCall> calls;
    // Adds what came after this delta (its text, then its calls).
    void append(Delta&& later);
  };

  // The next piece of the output. Held back: a tail that may begin "<tool_call>", an open block,
  // and trailing whitespace (so that whitespace around calls is not sent as content).
  Delta feed(std::string_view text);
  // The output ended: held text comes out (an unclosed block as text); trailing whitespace only
  // when no call was found.
  Delta finish();
  size_t n_calls() const { return n_calls_; }

 private:
  void emit_text(std::string_view text, Delta* out);
  void close_block(std::string_view body, Delta* out);

  size_t max_calls_;
  size_t n_calls_ = 0;  // calls emitted (dropped ones not counted)
  bool in_block_ = false;
  std::string buf_;         // outside a block: a possible "<tool_call>" prefix; inside: the body
  size_t searched_ = 0;     // inside a block: buf_ bytes already searched for the end tag
  std::string held_space_;  // trailing whitespace not sent yet
};

// The whole output at once: the content (trimmed when there are calls) and the calls, ids
// included.
struct ParsedOutput {
  std::string content;
  std::vector<ToolCall> calls;
};
ParsedOutput parse_tool_calls(std::string_view text,
                              size_t max_calls = std::numeric_limits<size_t>::max());

}  // namespace dspark::server
