#include "chat_prompt.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace dspark::server {

namespace {

constexpr std::array<std::string_view, 5> kRoles = {"system", "developer", "user", "assistant",
                                                    "tool"};

}  // namespace

std::optional<ApiError> check_roles(const ChatFormat& format,
                                    const std::vector<chat::Message>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (std::find(kRoles.begin(), kRoles.end(), role) != kRoles.end()) continue;
    if (role == "function" && format.function_role) continue;
    const std::string where = "messages[" + std::to_string(i) + "].role";
    std::string supported = "'system', 'developer', 'user', 'assistant'";
    supported += format.function_role ? ", 'tool' and 'function'" : " and 'tool'";
    return bad_request("Invalid value: '" + role + "'. Supported values are: " + supported + ".",
                       where, "invalid_value");
  }
  return std::nullopt;
}

std::optional<ApiError> chat_prompt_tokens(const ServedModel& model,
                                           const std::vector<chat::Message>& messages,
                                           bool add_special, bool allow_control_tokens,
                                           std::vector<int32_t>* out) {
  if (auto e = check_roles(model.chat, messages)) return e;
  auto prompt = render_chat_prompt(model.chat, messages);
  if (!prompt.ok()) {
    return bad_request("the chat template failed on these messages: " + prompt.error().message,
                       "messages");
  }
  *out = tokenize_chat_prompt(*model.tokenizer, *prompt, add_special, allow_control_tokens);
  return std::nullopt;
}

}  // namespace dspark::server
