// dspark capture: JSONL samples to token ids (see capture.h).
#include <nlohmann/json.hpp>

#include "capture.h"

namespace dspark::cli::capture {

namespace {

using nlohmann::json;

// A string field of the sample object, or an error naming it.
Result<std::string> string_field(const json& sample, const char* key, const std::string& where) {
  auto it = sample.find(key);
  if (it == sample.end()) return Error{where + ": missing field \"" + key + "\""};
  if (!it->is_string()) return Error{where + ": field \"" + key + "\" must be a string"};
  return it->get<std::string>();
}

// A message's content: a string, or a list of {"type": "text", "text": ...} parts joined (as the
// server accepts them).
Result<std::string> message_content(const json& content, const std::string& where) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return Error{where + " must be a string or a list of text parts"};
  std::string out;
  for (const json& part : content) {
    auto type = part.is_object() ? part.find("type") : part.end();
    auto text = part.is_object() ? part.find("text") : part.end();
    if (type == part.end() || *type != "text" || text == part.end() || !text->is_string()) {
      return Error{where + " has a part that is not {\"type\": \"text\", \"text\": string}"};
    }
    out += text->get<std::string>();
  }
  return out;
}

}  // namespace

Result<chat::RenderedPrompt> SampleEncoder::render_messages(const json& messages,
                                                            const std::string& where) {
  if (!messages.is_array() || messages.empty()) {
    return Error{where + ": field \"messages\" must be a non-empty list"};
  }
  std::vector<chat::Message> list;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = where + ": messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return Error{at + " must be an object"};
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return Error{at + " needs a string \"role\""};
    chat::Message msg;
    msg.role = role->get<std::string>();
    if (auto content = m.find("content"); content != m.end()) {
      auto text = message_content(*content, at + ".content");
      if (!text.ok()) return text.error();
      msg.content = std::move(text).value();
    }
    if (auto name = m.find("name"); name != m.end() && name->is_string()) {
      msg.name = name->get<std::string>();
    }
    list.push_back(std::move(msg));
  }
  if (!chat_) {
    bool fallback = false;  // no template: the server's ChatML layout, as `dspark serve` does
    auto format = server::load_chat_format(*model_.file, *model_.tokenizer, "", &fallback);
    if (!format.ok()) return format.error();
    chat_ = std::move(format).value();
  }
  auto prompt = server::render_chat_prompt(*chat_, list);
  if (!prompt.ok()) return Error{where + ": the chat template failed: " + prompt.error().message};
  return prompt;
}

Result<EncodedSample> SampleEncoder::encode(const std::string& line, int64_t line_no) {
  const std::string where = "input line " + std::to_string(line_no);
  json sample = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (sample.is_discarded()) return Error{where + ": not valid JSON"};
  if (!sample.is_object()) return Error{where + ": expected a JSON object"};
  const bool has_prompt = sample.contains("prompt"), has_messages = sample.contains("messages");
  if (has_prompt == has_messages) {
    return Error{where + ": give exactly one of the fields \"prompt\" and \"messages\""};
  }
  chat::RenderedPrompt prompt;  // a raw prompt has no content ranges: all of it is parsed
  if (has_prompt) {
    auto text = string_field(sample, "prompt", where);
    if (!text.ok()) return text.error();
    prompt.text = std::move(text).value();
  } else {
    auto rendered = render_messages(sample["messages"], where);
    if (!rendered.ok()) return rendered.error();
    prompt = std::move(rendered).value();
  }
  auto answer = string_field(sample, "answer", where);
  if (!answer.ok()) return answer.error();

  // The prompt as the server tokenizes a rendered chat prompt (the rendering wrote any BOS;
  // message content gives no control tokens); the answer without BOS, so an "<|im_end|>" it
  // ends with becomes that token.
  const Tokenizer& tok = *model_.tokenizer;
  EncodedSample out;
  out.tokens = server::tokenize_chat_prompt(tok, prompt, /*add_special=*/false,
                                            /*allow_control_tokens=*/false);
  out.n_prompt = int64_t(out.tokens.size());
  const std::vector<int32_t> answer_ids = tok.encode(*answer, false, true);
  out.tokens.insert(out.tokens.end(), answer_ids.begin(), answer_ids.end());
  return out;
}

}  // namespace dspark::cli::capture
