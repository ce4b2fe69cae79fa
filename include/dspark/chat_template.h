// Chat templates: a Jinja subset interpreter, enough for the templates the supported model
// families ship (loops, conditionals, set, namespaces, macros, the filters, tests and methods they
// use, raise_exception), rendering OpenAI-style conversations into the prompt text exactly as
// Python's jinja2 does (trim_blocks and lstrip_blocks on, as Hugging Face renders them).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dspark/loader.h"
#include "dspark/status.h"
#include "dspark/text.h"

namespace dspark::chat {

struct Message {
  std::string role;     // "system", "user", "assistant", "tool", ...
  std::string content;  // text (content parts already joined by the caller)
  std::optional<std::string> name;
};

struct RenderOptions {
  bool add_generation_prompt = true;
  std::string bos_token;  // the template's bos_token / eos_token variables
  std::string eos_token;
  // Output bound; the effective limit is the larger of this and 4x the context's size, so long
  // conversations always fit while runaway templates stop early.
  size_t max_output_bytes = size_t{1} << 20;
};

// A rendered prompt and where its bytes came from.
struct RenderedPrompt {
  std::string text;
  // Byte ranges of text that came from the conversation's data, sorted and disjoint: message
  // content and names, tool calls and their arguments, tool results, tools and documents
  // (every string under the context's `messages`, `tools` and `documents` except message
  // roles), and any text the template computed from them. Roles are left unmarked so that
  // templates can build control tokens from them ('<|' + role + '|>'): callers must accept only
  // known roles. Tokenizer::encode_with_content keeps these bytes from becoming control tokens.
  std::vector<ByteSpan> content;
};

class ChatTemplate {
 public:
  // Parses the template; errors name what is unsupported or malformed, with line and column.
  static Result<ChatTemplate> parse(const std::string& source);
  // Renders the conversation; errors carry the template's raise_exception message or name the
  // failing expression.
  Result<std::string> render(std::span<const Message> messages, const RenderOptions& options) const;
  // Renders with the whole template context given as a JSON object, as Hugging Face's
  // apply_chat_template passes it: messages with any fields (tool_calls, reasoning_content,
  // content parts), tools, documents, add_generation_prompt, special tokens and extra
  // variables (enable_thinking, ...). Only options.max_output_bytes is used.
  Result<std::string> render_json(const std::string& context_json,
                                  const RenderOptions& options = {}) const;
  // The same two renderings with the provenance of every byte (RenderedPrompt::content).
  Result<RenderedPrompt> render_prompt(std::span<const Message> messages,
                                       const RenderOptions& options) const;
  Result<RenderedPrompt> render_json_prompt(const std::string& context_json,
                                            const RenderOptions& options = {}) const;
  const std::string& source() const;

  struct Program;

 private:
  std::shared_ptr<const Program> program_;
  std::string source_;
};

// The model's own template: GGUF "tokenizer.chat_template", or an HF folder's
// tokenizer_config.json "chat_template" (a string, or the entry named "default" of a list).
// nullopt when the model has none.
Result<std::optional<std::string>> find_chat_template(const ModelFile& file);

}  // namespace dspark::chat
