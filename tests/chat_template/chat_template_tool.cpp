// Helper for test_chat_template_ref.py: renders a chat template on many contexts, or prints the
// template a model file carries. Output is one JSON object per line on stdout.
//
//   chat_template_tool render TEMPLATE_FILE CONTEXTS_FILE
//       CONTEXTS_FILE: one JSON object per line (the template's variables). Out per line:
//       {"ok":true,"text":...,"content":[[begin,end],...]} (the byte ranges that came from the
//       conversation, RenderedPrompt::content) or {"ok":false,"error":...}; a template that
//       does not parse gives {"ok":false,"parse_error":...} for every line.
//   chat_template_tool render_each TEMPLATES_FILE CONTEXT_FILE
//       TEMPLATES_FILE: one JSON string (a template) per line; one output line per template.
//   chat_template_tool encode TOKENIZER TEMPLATE_FILE CONTEXTS_FILE
//       TOKENIZER: a .gguf or a tokenizer.json. As render, plus "ids" (encode_with_content over
//       the content ranges, as the server tokenizes chat prompts) and "ids_all" (encode with
//       special tokens parsed everywhere), both without add_special.
//   chat_template_tool find MODEL    Out: {"template": text or null} or {"error": ...}.
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "dspark/chat_template.h"
#include "dspark/loader.h"
#include "dspark/tokenizer.h"

namespace {

using Json = nlohmann::json;

void print(const Json& j) {
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
}

// The output line of one rendering; with a tokenizer, also its ids.
Json rendered_json(const dspark::Result<dspark::chat::RenderedPrompt>& out,
                   const dspark::Tokenizer* tok) {
  if (!out.ok()) return {{"ok", false}, {"error", out.error().message}};
  Json spans = Json::array();
  for (const auto& s : out->content) spans.push_back({s.begin, s.end});
  Json j = {{"ok", true}, {"text", out->text}, {"content", spans}};
  if (tok) {
    j["ids"] = tok->encode_with_content(out->text, out->content, false);
    j["ids_all"] = tok->encode(out->text, false, true);
  }
  return j;
}

std::unique_ptr<dspark::Tokenizer> load_tokenizer(const std::string& path) {
  const bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  dspark::Result<std::unique_ptr<dspark::Tokenizer>> tok = dspark::Error{""};
  if (is_json) {
    tok = dspark::Tokenizer::from_hf_json(path);
  } else {
    auto file = dspark::ModelFile::open(path);
    if (!file.ok()) {
      std::cerr << file.error().message << "\n";
      return nullptr;
    }
    tok = dspark::Tokenizer::from_model_file(*file.value());
  }
  if (!tok.ok()) {
    std::cerr << tok.error().message << "\n";
    return nullptr;
  }
  return std::move(tok).value();
}

int run_render(const std::string& template_path, const std::string& contexts_path,
               const dspark::Tokenizer* tok = nullptr) {
  std::ifstream tf(template_path, std::ios::binary);
  std::ifstream cf(contexts_path, std::ios::binary);
  if (!tf || !cf) {
    std::cerr << "cannot open " << template_path << " or " << contexts_path << "\n";
    return 1;
  }
  std::ostringstream ss;
  ss << tf.rdbuf();
  const auto tmpl = dspark::chat::ChatTemplate::parse(ss.str());
  std::string line;
  while (std::getline(cf, line)) {
    if (!tmpl.ok()) {
      print({{"ok", false}, {"parse_error", tmpl.error().message}});
      continue;
    }
    print(rendered_json(tmpl->render_json_prompt(line), tok));
  }
  return 0;
}

// One context, many templates (one JSON string per line): for the random expression check.
int run_each(const std::string& templates_path, const std::string& context_path) {
  std::ifstream tf(templates_path, std::ios::binary);
  std::ifstream cf(context_path, std::ios::binary);
  if (!tf || !cf) {
    std::cerr << "cannot open " << templates_path << " or " << context_path << "\n";
    return 1;
  }
  std::ostringstream ss;
  ss << cf.rdbuf();
  const std::string context = ss.str();
  std::string line;
  while (std::getline(tf, line)) {
    const Json text = Json::parse(line, nullptr, false);
    if (!text.is_string()) {
      std::cerr << "bad template line: " << line << "\n";
      return 1;
    }
    const auto tmpl = dspark::chat::ChatTemplate::parse(text.get<std::string>());
    if (!tmpl.ok()) {
      print({{"ok", false}, {"parse_error", tmpl.error().message}});
      continue;
    }
    print(rendered_json(tmpl->render_json_prompt(context), nullptr));
  }
  return 0;
}

int run_find(const std::string& model) {
  const auto file = dspark::ModelFile::open(model);
  if (!file.ok()) {
    print({{"error", file.error().message}});
    return 0;
  }
  const auto found = dspark::chat::find_chat_template(*file.value());
  if (!found.ok())
    print({{"error", found.error().message}});
  else if (!found->has_value())
    print({{"template", nullptr}});
  else
    print({{"template", **found}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "render" && argc == 4) return run_render(argv[2], argv[3]);
  if (cmd == "render_each" && argc == 4) return run_each(argv[2], argv[3]);
  if (cmd == "find" && argc == 3) return run_find(argv[2]);
  if (cmd == "encode" && argc == 5) {
    const auto tok = load_tokenizer(argv[2]);
    return tok ? run_render(argv[3], argv[4], tok.get()) : 1;
  }
  std::cerr << "usage: chat_template_tool render TEMPLATE CONTEXTS | render_each TEMPLATES "
               "CONTEXT | encode TOKENIZER TEMPLATE CONTEXTS | find MODEL\n";
  return 2;
}
