// Parsing and validation of /v1/chat/completions and /v1/completions bodies into C++ types.
// Unknown fields are ignored (as OpenAI's API tolerates); a known field of the wrong type or out
// of range is a 400 naming the field; null counts as absent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_error.h"
#include "dspark/chat_template.h"
#include "dspark/grammar.h"
#include "dspark/sample.h"
#include "ordered_json.h"

namespace dspark::server {

// Request limits (documented in `dspark serve --help`).
struct RequestLimits {
  int32_t max_n = 16;           // choices per prompt
  int32_t max_choices = 64;     // n * prompts: engine requests one HTTP request may start
  int32_t max_stop = 16;        // stop strings
  size_t max_stop_bytes = 256;  // per stop string
  int32_t max_stop_token_ids = 64;
  int32_t max_logit_bias = 1024;  // entries
  int32_t max_top_logprobs = 20;
  int32_t max_json_depth = 64;  // nesting of the body (and of each tool-call arguments text)
  int32_t max_tools = 128;      // chat tools
  // Keys of any one object in the tools and in tool-call arguments (their key order is kept,
  // and the chat template's context parser is quadratic in an object's keys).
  size_t max_tool_object_keys = 1024;
};

enum class Endpoint { kChat, kCompletion };

// One completions prompt: text, or token ids when the client sent ids.
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;  // [n_prompt] when is_tokens
  bool is_tokens = false;
};

// tool_choice. kRequired and kNamed constrain the output to one call (structured_outputs.h).
enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

// OpenAI's tool fields of one chat message, in the shape chat templates take.
struct MessageTools {
  // Assistant messages: [{"id", "type": "function", "function": {"name", "arguments"}}] with the
  // arguments' JSON text parsed (in key order): Hugging Face templates print them with tojson,
  // and vLLM converts them the same way.
  std::vector<OrderedJson> tool_calls;
  std::optional<std::string> tool_call_id;  // tool messages
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;                    // empty: absent
  std::vector<chat::Message> messages;  // chat
  std::vector<PromptInput> prompts;     // completions: one or more
  std::optional<int32_t> max_tokens;    // max_completion_tokens, else max_tokens
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt text before the completion
  bool logprobs = false;
  int32_t top_logprobs = 0;
  std::optional<uint64_t> seed;
  std::string user;
  // Every sampling field except max_tokens and seed, which the handler sets per choice.
  SamplingParams sampling;
  bool speculate = true;  // extension "speculation": false opts this request out
  // Extension "return_token_ids" (vLLM's name): a non-streamed response carries the prompt's
  // token ids as the engine received them (chat: top-level "prompt_token_ids"; completions: per
  // choice).
  bool return_token_ids = false;
  // Structured outputs (structured_outputs.h): the grammar the output must match and the field
  // it came from (what a compile error names); nullopt: unconstrained.
  std::optional<GrammarSpec> grammar;
  std::string grammar_param;

  // Chat tool calling.
  std::vector<OrderedJson> tools;  // the request's tool objects, validated, in key order
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_choice_name;  // kNamed: the function
  bool parallel_tool_calls = true;
  std::vector<MessageTools> message_tools;  // [n_messages]
  // The tools go into the prompt and the output is parsed for calls.
  bool tools_enabled() const { return !tools.empty() && tool_choice != ToolChoice::kNone; }
  // Some message carries tool_calls or a tool_call_id.
  bool has_tool_messages() const;
};

// Checks the nesting depth of a JSON text before parsing it (bounded recursion everywhere).
bool json_depth_within(std::string_view body, int32_t max_depth);

// Parses the body of the given endpoint; on failure returns the error (400 and the param).
// response_format json_object / json_schema and vLLM's guided_* fields become `grammar`
// (structured_outputs.h); more than one of them is a 400.
std::optional<ApiError> parse_request(std::string_view body, Endpoint endpoint,
                                      const RequestLimits& limits, ParsedRequest* out);

// Chat message content: a string, null, or a list of parts whose text parts are joined; other
// part types are errors naming the message.
std::optional<ApiError> message_content(const nlohmann::json& content, size_t index,
                                        std::string* out);

}  // namespace dspark::server
