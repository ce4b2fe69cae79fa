// The tool-calling fields of a chat request (tools, tool_choice, parallel_tool_calls, messages'
// tool_calls and tool_call_id). Each error is a 400 naming the field, e.g.
// tools[2].function.name.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api_error.h"
#include "request_parse.h"

namespace dspark::server {

// tools, tool_choice and parallel_tool_calls of the chat body `body`, whose text is
// `body_text` (the tools are read from it again to keep their key order).
std::optional<ApiError> parse_tools(const nlohmann::json& body, std::string_view body_text,
                                    const RequestLimits& limits, ParsedRequest* out);

// tool_calls (assistant messages) and tool_call_id (tool messages) of messages[index].
std::optional<ApiError> parse_message_tools(const nlohmann::json& message, size_t index,
                                            const std::string& role, const RequestLimits& limits,
                                            MessageTools* out);

}  // namespace dspark::server
