// Chat prompt formats: the model's Jinja template, a --chat-template override, or ChatML.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dspark/server.h"

namespace dspark::server {

namespace {

// The plain ChatML layout many instruction-tuned models use; the fallback when a model ships no
// template. Message content is marked as such.
chat::RenderedPrompt chatml(const std::vector<chat::Message>& messages) {
  chat::RenderedPrompt out;
  for (const chat::Message& m : messages) {
    out.text += "<|im_start|>" + m.role + "\n";
    const size_t begin = out.text.size();
    out.text += m.content;
    if (!m.content.empty()) out.content.push_back({begin, out.text.size()});
    out.text += "<|im_end|>\n";
  }
  out.text += "<|im_start|>assistant\n";
  return out;
}

// Whether the template names the role "function": a quoted 'function' shortly after "role", as
// in message.role == 'function' or message['role'] in ['tool', 'function'].
bool mentions_function_role(const std::string& source) {
  for (const char* literal : {"'function'", "\"function\""}) {
    for (size_t at = source.find(literal); at != std::string::npos;
         at = source.find(literal, at + 1)) {
      const size_t from = at > 48 ? at - 48 : 0;
      if (source.substr(from, at - from).find("role") != std::string::npos) return true;
    }
  }
  return false;
}

std::string token_text(const Tokenizer& tokenizer, int32_t id) {
  return id >= 0 ? tokenizer.token_bytes(id, true) : std::string();
}

}  // namespace

Result<ChatFormat> load_chat_format(const ModelFile& file, const Tokenizer& tokenizer,
                                    const std::string& override_arg, bool* used_fallback) {
  ChatFormat format;
  format.bos_token = token_text(tokenizer, tokenizer.bos_id());
  format.eos_token = token_text(tokenizer, tokenizer.eos_id());
  *used_fallback = false;
  std::string source, origin;
  if (!override_arg.empty()) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(override_arg, ec)) {
      std::ifstream in(override_arg, std::ios::binary);
      if (!in) return Error{"cannot read the chat template file '" + override_arg + "'"};
      std::ostringstream text;
      text << in.rdbuf();
      source = text.str();
      origin = "chat template file '" + override_arg + "'";
    } else {
      source = override_arg;
      origin = "--chat-template text";
    }
  } else {
    auto found = chat::find_chat_template(file);
    if (!found.ok()) return Error{"reading the model's chat template: " + found.error().message};
    if (!found.value()) {
      *used_fallback = true;
      return format;
    }
    source = **found;
    origin = "the model's chat template";
  }
  auto parsed = chat::ChatTemplate::parse(source);
  if (!parsed.ok()) return Error{origin + " does not parse: " + parsed.error().message};
  format.chat_template = std::move(parsed.value());
  format.function_role = mentions_function_role(source);
  // The one place that decides what a template can do with tools: it must read `tools`, and
  // the calls it teaches the model to write must be in a format the server parses.
  format.renders_tools = source.find("tools") != std::string::npos;
  if (source.find("<tool_call>") != std::string::npos) format.tool_calls = ToolCallFormat::kHermes;
  return format;
}

Result<chat::RenderedPrompt> render_chat_prompt(const ChatFormat& format,
                                                const std::vector<chat::Message>& messages) {
  if (!format.chat_template) return chatml(messages);
  chat::RenderOptions options;
  options.add_generation_prompt = true;
  options.bos_token = format.bos_token;
  options.eos_token = format.eos_token;
  return format.chat_template->render_prompt(messages, options);
}

Result<std::string> render_chat(const ChatFormat& format,
                                const std::vector<chat::Message>& messages) {
  auto prompt = render_chat_prompt(format, messages);
  if (!prompt.ok()) return prompt.error();
  return std::move(prompt.value().text);
}

std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer,
                                          const chat::RenderedPrompt& prompt, bool add_special,
                                          bool allow_control_tokens) {
  if (allow_control_tokens) return tokenizer.encode(prompt.text, add_special, true);
  return tokenizer.encode_with_content(prompt.text, prompt.content, add_special);
}

}  // namespace dspark::server
