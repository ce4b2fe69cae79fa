// OpenAI response bodies: whole chat.completion / text_completion objects, streamed chunks
// (chat.completion.chunk, text_completion) as server-sent events, usage, logprobs in each
// endpoint's shape, and the `dspark` extension with speculation statistics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dspark/engine.h"
#include "dspark/tokenizer.h"
#include "request_parse.h"
#include "tool_calls.h"

namespace dspark::server {

// What every object of one response shares.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::string model;
  std::string fingerprint;  // system_fingerprint; empty: omitted
};

// A fresh response id for the endpoint: the prefix and 24 random hex digits.
std::string new_response_id(Endpoint endpoint);

// Everything one choice produced.
struct ChoiceResult {
  int32_t index = 0;
  std::string text;                     // echo prefix included
  int64_t echo_bytes = 0;               // bytes of the echoed prompt at the start of text
  std::vector<TokenLogprobs> logprobs;  // [n_completion] when asked
  engine::FinalRecord final;
  const std::vector<int32_t>* prompt_ids = nullptr;  // return_token_ids: the engine's prompt
  // Chat with tools: the calls parsed from the output (text is then the content around them,
  // trimmed; empty content is sent as null).
  std::vector<ToolCall> tool_calls;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

nlohmann::json usage_json(const Usage& usage);
// {"drafted", "accepted", "mean_accepted_length"}.
nlohmann::json spec_json(const engine::SpecStats& spec);
// Sums the counters of several requests.
void add_spec(const engine::SpecStats& from, engine::SpecStats* into);
// Mean tokens committed per decode round: accepted drafts plus the bonus token; 1 when no round
// speculated.
double mean_accepted_length(const engine::SpecStats& spec);
// "stop", "length", "abort", "error"; "tool_calls" instead of "stop" when the choice called
// tools (a call cut off by the length limit stays "length").
const char* finish_reason(const engine::FinalRecord& final, bool called_tools = false);

// Logprobs of some tokens in the endpoint's shape. Completions report text offsets: *offset is
// the offset of the first token in the choice's text and advances past the tokens.
nlohmann::json logprobs_json(Endpoint endpoint, const std::vector<TokenLogprobs>& logprobs,
                             const Tokenizer& tokenizer, int64_t* offset);

// The whole non-streamed response.
std::string full_response(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                          bool with_logprobs, const Usage& usage, const Tokenizer& tokenizer);

// Streamed chunks, each already framed as "data: {...}\n\n".
std::string sse(const nlohmann::json& chunk);
std::string sse_done();  // "data: [DONE]\n\n"
// Chat only: the first chunk of a choice, delta {"role": "assistant", "content": ""}.
std::string role_chunk(const ResponseMeta& meta, int32_t index, bool include_usage);
// New text (and its tokens' logprobs, or null).
std::string text_chunk(const ResponseMeta& meta, int32_t index, const std::string& text,
                       const nlohmann::json& logprobs, bool include_usage);
// Chat with tools: one whole tool call, delta {"tool_calls": [{"index": call_index, "id",
// "type": "function", "function": {"name", "arguments"}}]}.
std::string tool_call_chunk(const ResponseMeta& meta, int32_t index, int32_t call_index,
                            const ToolCall& call, bool include_usage);
// A choice's last chunk: empty delta (chat) or text (completions), finish_reason, and the
// dspark extension.
std::string finish_chunk(const ResponseMeta& meta, int32_t index, const engine::FinalRecord& final,
                         bool include_usage, bool called_tools = false);
// stream_options.include_usage: the chunk with empty choices after every choice finished.
std::string usage_chunk(const ResponseMeta& meta, const Usage& usage,
                        const engine::SpecStats& spec);
// An error in the middle of a stream: data: {"error": {...}}.
std::string error_chunk(const ApiError& error);

}  // namespace dspark::server
