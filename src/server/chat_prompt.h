// Chat messages -> prompt tokens for /v1/chat/completions and /tokenize: roles checked, the
// template rendered with the provenance of its bytes, and the text tokenized so that message
// content never becomes control tokens (unless the server allows it).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "api_error.h"
#include "dspark/server.h"

namespace dspark::server {

// A 400 naming the first message whose role the API does not accept, as OpenAI answers: the
// roles are system, developer, user, assistant and tool, and function when the template
// handles it (ChatFormat::function_role).
std::optional<ApiError> check_roles(const ChatFormat& format,
                                    const std::vector<chat::Message>& messages);

// Checks the roles, renders and tokenizes; a template failure is a 400 naming the messages.
std::optional<ApiError> chat_prompt_tokens(const ServedModel& model,
                                           const std::vector<chat::Message>& messages,
                                           bool add_special, bool allow_control_tokens,
                                           std::vector<int32_t>* out);

}  // namespace dspark::server
