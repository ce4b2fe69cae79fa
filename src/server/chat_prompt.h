// Chat messages -> prompt tokens for /v1/chat/completions and /tokenize: roles checked, the
// template rendered with the provenance of its bytes, and the text tokenized so that message
// content never becomes control tokens (unless the server allows it). Requests with tools, or
// with messages that carry tool calls or results, render the template with Hugging Face's whole
// context (messages with tool_calls and tool_call_id, tools) as vLLM does.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "api_error.h"
#include "dspark/server.h"
#include "request_parse.h"

namespace dspark::server {

// A 400 naming the first message whose role the API does not accept, as OpenAI answers: the
// roles are system, developer, user, assistant and tool, and function when the template
// handles it (ChatFormat::function_role).
std::optional<ApiError> check_roles(const ChatFormat& format,
                                    const std::vector<chat::Message>& messages);

// A 400 when the request's tools cannot be served by the format: a template that does not read
// `tools` (or none at all), or tool calls in a format the server does not parse; and tool calls
// in messages with no template to render them.
std::optional<ApiError> check_tool_support(const ChatFormat& format, const ParsedRequest& request);

// Checks the roles and the tool support, renders and tokenizes the request's messages (and
// tools, unless tool_choice is "none"); a template failure is a 400 naming the messages.
std::optional<ApiError> chat_prompt_tokens(const ServedModel& model, const ParsedRequest& request,
                                           bool add_special, bool allow_control_tokens,
                                           std::vector<int32_t>* out);

}  // namespace dspark::server
