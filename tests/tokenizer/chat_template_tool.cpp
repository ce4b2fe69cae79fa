// Helper for test_chat_template_ref.py: renders a chat template on many contexts, or prints the
// template a model file carries. Output is one JSON object per line on stdout.
//
//   chat_template_tool render TEMPLATE_FILE CONTEXTS_FILE
//       CONTEXTS_FILE: one JSON object per line (the template's variables). Out per line:
//       {"ok":true,"text":...} or {"ok":false,"error":...}; a template that does not parse
//       gives {"ok":false,"parse_error":...} for every line.
//   chat_template_tool render_each TEMPLATES_FILE CONTEXT_FILE
//       TEMPLATES_FILE: one JSON string (a template) per line; one output line per template.
//   chat_template_tool find MODEL    Out: {"template": text or null} or {"error": ...}.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "dspark/chat_template.h"
#include "dspark/loader.h"

namespace {

using Json = nlohmann::json;

void print(const Json& j) {
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
}

int run_render(const std::string& template_path, const std::string& contexts_path) {
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
    const auto out = tmpl->render_json(line);
    if (out.ok())
      print({{"ok", true}, {"text", *out}});
    else
      print({{"ok", false}, {"error", out.error().message}});
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
    const auto out = tmpl->render_json(context);
    if (out.ok())
      print({{"ok", true}, {"text", *out}});
    else
      print({{"ok", false}, {"error", out.error().message}});
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
  std::cerr << "usage: chat_template_tool render TEMPLATE CONTEXTS | render_each TEMPLATES "
               "CONTEXT | find MODEL\n";
  return 2;
}
