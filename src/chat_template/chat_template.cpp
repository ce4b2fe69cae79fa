#include "dspark/chat_template.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "jinja_eval.h"
#include "jinja_parser.h"

namespace dspark::chat {

struct ChatTemplate::Program {
  jinja::Body body;
};

namespace {

using jinja::Value;
using Json = nlohmann::ordered_json;  // keeps key order, as Python's json.loads does

// A context string; `mark` marks all of it as conversation data.
Value json_string(std::string s, bool mark) {
  const size_t n = s.size();
  return mark ? Value::string(std::move(s), jinja::Marks::whole(n)) : Value::string(std::move(s));
}

// `mark`: strings (keys too) are conversation data, except the value of "role" in an object
// directly inside `messages` (role_level 1 there), which the caller validates.
Value from_json(const Json& j, int depth, bool mark, int role_level = -1) {
  if (depth > jinja::kMaxValueDepth) throw jinja::TemplateError("context JSON nests too deeply");
  switch (j.type()) {
    case Json::value_t::null:
      return Value::none();
    case Json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case Json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case Json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX))
        throw jinja::TemplateError("context JSON integer too large: " + std::to_string(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case Json::value_t::number_float:
      return Value::number(j.get<double>());
    case Json::value_t::string:
      return json_string(j.get<std::string>(), mark);
    case Json::value_t::array: {
      std::vector<Value> items;
      for (const auto& e : j) items.push_back(from_json(e, depth + 1, mark, role_level - 1));
      return jinja::make_list(std::move(items));
    }
    case Json::value_t::object: {
      std::vector<std::pair<Value, Value>> items;
      for (const auto& [k, v] : j.items()) {
        const bool role = role_level == 0 && k == "role" && v.is_string();
        items.emplace_back(json_string(k, mark), from_json(v, depth + 1, mark && !role));
      }
      return jinja::make_dict(std::move(items));
    }
    default:
      throw jinja::TemplateError("context JSON holds an unsupported value");
  }
}

RenderedPrompt to_prompt(jinja::MarkedText t) {
  RenderedPrompt p;
  p.text = std::move(t.text);
  p.content = t.marks.ranges();
  return p;
}

Result<RenderedPrompt> run(const jinja::Body& body,
                           std::vector<std::pair<std::string, Value>> context, size_t input_bytes,
                           const RenderOptions& options) {
  jinja::RenderLimits limits;
  limits.max_output_bytes = std::max(options.max_output_bytes, 4 * input_bytes);
  try {
    jinja::Interpreter interp(body, limits);
    return to_prompt(interp.render(std::move(context)));
  } catch (const jinja::RaisedError& e) {
    return Error{e.what()};
  } catch (const jinja::TemplateError& e) {
    return Error{std::string("chat template: ") + e.what()};
  } catch (const std::bad_alloc&) {
    return Error{"chat template: out of memory while rendering"};
  }
}

Result<std::string> text_of(Result<RenderedPrompt> r) {
  if (!r.ok()) return r.error();
  return std::move(r.value().text);
}

std::optional<std::string> read_file(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(const std::string& source) {
  ChatTemplate t;
  try {
    auto program = std::make_shared<Program>();
    program->body = jinja::parse_template(source);
    t.program_ = std::move(program);
  } catch (const jinja::TemplateError& e) {
    return Error{std::string("chat template: ") + e.what()};
  } catch (const std::bad_alloc&) {
    return Error{"chat template: out of memory while parsing"};
  }
  t.source_ = source;
  return t;
}

const std::string& ChatTemplate::source() const {
  return source_;
}

Result<std::string> ChatTemplate::render(std::span<const Message> messages,
                                         const RenderOptions& options) const {
  return text_of(render_prompt(messages, options));
}

Result<std::string> ChatTemplate::render_json(const std::string& context_json,
                                              const RenderOptions& options) const {
  return text_of(render_json_prompt(context_json, options));
}

Result<RenderedPrompt> ChatTemplate::render_prompt(std::span<const Message> messages,
                                                   const RenderOptions& options) const {
  if (!program_) return Error{"chat template: not parsed"};
  std::vector<Value> list;
  size_t input_bytes = options.bos_token.size() + options.eos_token.size();
  try {
    for (const Message& m : messages) {
      // Content and names are conversation data; the role is the caller's validated choice.
      std::vector<std::pair<Value, Value>> fields = {
          {Value::string("role"), Value::string(m.role)},
          {Value::string("content"), json_string(m.content, true)}};
      if (m.name) fields.emplace_back(Value::string("name"), json_string(*m.name, true));
      list.push_back(jinja::make_dict(std::move(fields)));
      input_bytes += m.role.size() + m.content.size() + (m.name ? m.name->size() : 0);
    }
    // The variables Hugging Face's apply_chat_template passes (tools and documents are None
    // when not given).
    std::vector<std::pair<std::string, Value>> context = {
        {"messages", jinja::make_list(std::move(list))},
        {"tools", Value::none()},
        {"documents", Value::none()},
        {"add_generation_prompt", Value::boolean(options.add_generation_prompt)},
        {"bos_token", Value::string(options.bos_token)},
        {"eos_token", Value::string(options.eos_token)},
    };
    return run(program_->body, std::move(context), input_bytes, options);
  } catch (const jinja::TemplateError& e) {
    return Error{std::string("chat template: ") + e.what()};
  }
}

Result<RenderedPrompt> ChatTemplate::render_json_prompt(const std::string& context_json,
                                                        const RenderOptions& options) const {
  if (!program_) return Error{"chat template: not parsed"};
  Json j;
  try {
    j = Json::parse(context_json);
  } catch (const Json::exception& e) {
    return Error{std::string("chat template: context is not valid JSON: ") + e.what()};
  }
  if (!j.is_object()) return Error{"chat template: context JSON must be an object"};
  std::vector<std::pair<std::string, Value>> context;
  try {
    for (const auto& [k, v] : j.items()) {
      // The conversation's data; the other variables are the deployment's settings.
      const bool data = k == "messages" || k == "tools" || k == "documents";
      context.emplace_back(k, from_json(v, 1, data, k == "messages" ? 1 : -1));
    }
  } catch (const jinja::TemplateError& e) {
    return Error{std::string("chat template: ") + e.what()};
  }
  return run(program_->body, std::move(context), context_json.size(), options);
}

Result<std::optional<std::string>> find_chat_template(const ModelFile& file) {
  if (file.format() == FileFormat::Gguf) {
    const MetaValue* v = file.find("tokenizer.chat_template");
    if (!v) return std::optional<std::string>();
    if (v->kind != MetaValue::Kind::String)
      return Error{file.path() + ": tokenizer.chat_template is not a string"};
    return std::optional<std::string>(v->s);
  }
  const std::filesystem::path dir(file.dir());
  // transformers prefers a chat_template.jinja file over tokenizer_config.json's entry.
  if (auto text = read_file(dir / "chat_template.jinja")) return std::optional<std::string>(*text);
  const auto config_path = dir / "tokenizer_config.json";
  const auto config = read_file(config_path);
  if (!config) return std::optional<std::string>();
  Json j;
  try {
    j = Json::parse(*config);
  } catch (const Json::exception& e) {
    return Error{config_path.string() + ": invalid JSON: " + e.what()};
  }
  if (!j.is_object() || !j.contains("chat_template") || j["chat_template"].is_null())
    return std::optional<std::string>();
  const Json& t = j["chat_template"];
  if (t.is_string()) return std::optional<std::string>(t.get<std::string>());
  if (t.is_array()) {
    for (const auto& entry : t) {
      if (!entry.is_object()) continue;
      const auto name = entry.find("name");
      if (name != entry.end() && name->is_string() && name->get<std::string>() == "default") {
        if (!entry.contains("template") || !entry["template"].is_string())
          return Error{config_path.string() + ": chat_template entry 'default' has no template"};
        return std::optional<std::string>(entry["template"].get<std::string>());
      }
    }
    return std::optional<std::string>();
  }
  return Error{config_path.string() + ": chat_template must be a string or a list"};
}

}  // namespace dspark::chat
