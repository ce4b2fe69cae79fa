#include "chat_prompt.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace dspark::server {

namespace {

constexpr std::array<std::string_view, 5> kRoles = {"system", "developer", "user", "assistant",
                                                    "tool"};

// The template's context as Hugging Face's apply_chat_template builds it: messages with their
// tool_calls (arguments as objects) and tool_call_id, the tools (none with tool_choice "none"),
// and the variables render_chat_prompt passes. Its strings under messages and tools are
// conversation data to the renderer, so none of them can become control tokens.
Result<chat::RenderedPrompt> render_with_tools(const ChatFormat& format,
                                               const ParsedRequest& request) {
  OrderedJson messages = OrderedJson::array();
  for (size_t i = 0; i < request.messages.size(); ++i) {
    const chat::Message& m = request.messages[i];
    const MessageTools& tools = request.message_tools[i];
    OrderedJson message = {{"role", m.role}, {"content", m.content}};
    if (m.name) message["name"] = *m.name;
    if (!tools.tool_calls.empty()) message["tool_calls"] = tools.tool_calls;
    if (tools.tool_call_id) message["tool_call_id"] = *tools.tool_call_id;
    messages.push_back(std::move(message));
  }
  OrderedJson context = {{"messages", std::move(messages)},
                         {"tools", nullptr},
                         {"documents", nullptr},
                         {"add_generation_prompt", true},
                         {"bos_token", format.bos_token},
                         {"eos_token", format.eos_token}};
  if (request.tools_enabled()) context["tools"] = request.tools;
  const std::string text = context.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
  return format.chat_template->render_json_prompt(text, chat::RenderOptions{});
}

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

std::optional<ApiError> check_tool_support(const ChatFormat& format, const ParsedRequest& request) {
  if (request.tools_enabled()) {
    if (!format.chat_template || !format.renders_tools) {
      return bad_request("this model's chat template does not support tools", "tools");
    }
    if (format.tool_calls == ToolCallFormat::kNone) {
      return bad_request(
          "this model's chat template asks for tool calls in a format the server does not parse "
          "yet (it parses the Hermes <tool_call> format of Qwen2.5, Qwen3 and Hermes models)",
          "tools");
    }
  }
  if (format.chat_template) return std::nullopt;
  for (size_t i = 0; i < request.message_tools.size(); ++i) {
    if (request.message_tools[i].tool_calls.empty()) continue;
    const std::string where = "messages[" + std::to_string(i) + "].tool_calls";
    return bad_request(
        "this model has no chat template, so the tool calls in '" + where + "' cannot be rendered",
        where);
  }
  return std::nullopt;
}

std::optional<ApiError> chat_prompt_tokens(const ServedModel& model, const ParsedRequest& request,
                                           bool add_special, bool allow_control_tokens,
                                           std::vector<int32_t>* out) {
  if (auto e = check_roles(model.chat, request.messages)) return e;
  if (auto e = check_tool_support(model.chat, request)) return e;
  const bool with_tools = request.tools_enabled() || request.has_tool_messages();
  auto prompt = with_tools && model.chat.chat_template
                    ? render_with_tools(model.chat, request)
                    : render_chat_prompt(model.chat, request.messages);
  if (!prompt.ok()) {
    return bad_request("the chat template failed on these messages: " + prompt.error().message,
                       "messages");
  }
  *out = tokenize_chat_prompt(*model.tokenizer, *prompt, add_special, allow_control_tokens);
  return std::nullopt;
}

}  // namespace dspark::server
