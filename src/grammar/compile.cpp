// Compiling one GrammarSpec with xgrammar, and CompiledGrammar's accessors.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/text.h"
#include "xgrammar_glue.h"

namespace dspark {

CompiledGrammar::CompiledGrammar(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompiledGrammar::~CompiledGrammar() = default;
GrammarKind CompiledGrammar::kind() const {
  return impl_->kind;
}
const std::shared_ptr<const GrammarVocab>& CompiledGrammar::vocab() const {
  return impl_->vocab;
}

const std::vector<std::string>& CompiledGrammar::warnings() const {
  return impl_->warnings;
}

size_t CompiledGrammar::memory_bytes() const {
  try {
    return impl_->compiled.MemorySizeBytes();
  } catch (...) {
    return 0;
  }
}

std::string xgrammar_message(const std::exception& e) {
  std::string msg = e.what();
  // XGRAMMAR_CHECK's "Check failed: (cond) is false: message": keep the message.
  static const std::string kCheck = "Check failed: (";
  size_t at = msg.find(kCheck);
  if (at != std::string::npos) {
    size_t end = msg.find(") is false: ", at);
    if (end != std::string::npos) msg = msg.substr(end + 12);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg.empty() ? "invalid input" : msg;
}

namespace {
xgrammar::CompiledGrammar compile_spec(xgrammar::GrammarCompiler& compiler, const GrammarSpec& spec,
                                       const std::string& choices) {
  // Compact JSON layout: xgrammar's separators for a single-line document.
  std::optional<std::pair<std::string, std::string>> separators;
  if (!spec.any_whitespace) separators = std::make_pair(std::string(", "), std::string(": "));
  const bool json = spec.kind == GrammarKind::JsonSchema || spec.kind == GrammarKind::JsonObject;
  if (json && (!spec.prefix.empty() || !spec.suffix.empty())) {
    // prefix + document + suffix, each literal a grammar of its own.
    std::vector<xgrammar::Grammar> parts;
    if (!spec.prefix.empty()) {
      parts.push_back(xgrammar::Grammar::FromEBNF("root ::= " + ebnf_literal(spec.prefix)));
    }
    const bool object = spec.kind == GrammarKind::JsonObject;
    parts.push_back(xgrammar::Grammar::FromJSONSchema(object ? R"({"type": "object"})" : spec.text,
                                                      spec.any_whitespace, std::nullopt, separators,
                                                      object ? false : spec.strict));
    if (!spec.suffix.empty()) {
      parts.push_back(xgrammar::Grammar::FromEBNF("root ::= " + ebnf_literal(spec.suffix)));
    }
    return compiler.CompileGrammar(xgrammar::Grammar::Concat(parts));
  }
  switch (spec.kind) {
    case GrammarKind::JsonSchema:
      return compiler.CompileJSONSchema(spec.text, spec.any_whitespace, std::nullopt, separators,
                                        spec.strict);
    case GrammarKind::JsonObject:
      // Any object: not strict, so every property is allowed.
      return compiler.CompileJSONSchema(R"({"type": "object"})", spec.any_whitespace, std::nullopt,
                                        separators, false);
    case GrammarKind::Regex:
      return compiler.CompileRegex(spec.text);
    case GrammarKind::Choice:
      return compiler.CompileGrammar(choices, "root");
    case GrammarKind::Ebnf:
      return compiler.CompileGrammar(spec.text, "root");
  }
  throw std::runtime_error("unknown grammar kind");
}
}  // namespace

namespace {
// Warnings xgrammar logs that do not mean part of the spec was dropped.
bool benign_warning(const std::string& w) {
  return w.rfind("The body of the lazy rule", 0) == 0;  // an internal optimization skipped
}

// Installs a warning sink for the current thread and restores the previous one on exit.
class WarningCapture {
 public:
  WarningCapture() : previous_(dspark_xgrammar::set_warning_sink(&warnings_)) {}
  ~WarningCapture() { dspark_xgrammar::set_warning_sink(previous_); }
  std::vector<std::string> take() {
    std::vector<std::string> out;
    for (std::string& w : warnings_) {
      if (!benign_warning(w)) out.push_back(std::move(w));
    }
    return out;
  }

 private:
  std::vector<std::string> warnings_;
  std::vector<std::string>* previous_;
};

// Checks that need no compile: empty texts, choices, unenforced schema keywords.
Result<std::string> precheck(const GrammarSpec& spec) {
  const std::string kind = grammar_kind_name(spec.kind);
  if (spec.kind == GrammarKind::Choice) return choice_ebnf(spec.choices);
  if (spec.kind != GrammarKind::JsonObject && spec.text.empty()) return Error{kind + ": empty"};
  if (!utf8_is_valid(spec.prefix) || !utf8_is_valid(spec.suffix)) {
    return Error{kind + ": the prefix or suffix is not valid UTF-8"};
  }
  if (spec.kind == GrammarKind::JsonSchema && !spec.ignore_unsupported) {
    if (auto keyword = unsupported_schema_keyword(spec.text)) {
      return Error{kind + ": unsupported: " + *keyword};
    }
  }
  return std::string();
}
}  // namespace

Result<std::shared_ptr<const CompiledGrammar>> compile_grammar(
    xgrammar::GrammarCompiler& compiler, const std::shared_ptr<const GrammarVocab>& vocab,
    const GrammarSpec& spec) {
  auto choices = precheck(spec);
  if (!choices.ok()) return choices.error();
  const std::string kind = grammar_kind_name(spec.kind);
  WarningCapture capture;
  auto compiled = xgrammar_call<xgrammar::CompiledGrammar>(
      ("invalid " + kind).c_str(), [&] { return compile_spec(compiler, spec, choices.value()); });
  if (!compiled.ok()) return compiled.error();
  std::vector<std::string> warnings = capture.take();
  if (!warnings.empty() && !spec.ignore_unsupported) {
    return Error{kind + ": unsupported: " + warnings.front()};
  }
  auto impl = std::make_unique<CompiledGrammar::Impl>(
      CompiledGrammar::Impl{std::move(compiled).value(), spec.kind, vocab, std::move(warnings)});
  return std::shared_ptr<const CompiledGrammar>(std::make_shared<CompiledGrammar>(std::move(impl)));
}

}  // namespace dspark
