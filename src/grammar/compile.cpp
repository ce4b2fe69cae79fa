// Compiling one GrammarSpec with xgrammar, and CompiledGrammar's accessors.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "dspark/grammar.h"
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

Result<std::shared_ptr<const CompiledGrammar>> compile_grammar(
    xgrammar::GrammarCompiler& compiler, const std::shared_ptr<const GrammarVocab>& vocab,
    const GrammarSpec& spec) {
  std::string choices;
  if (spec.kind == GrammarKind::Choice) {
    auto ebnf = choice_ebnf(spec.choices);
    if (!ebnf.ok()) return ebnf.error();
    choices = std::move(ebnf).value();
  }
  if (spec.kind == GrammarKind::JsonSchema || spec.kind == GrammarKind::Regex ||
      spec.kind == GrammarKind::Ebnf) {
    if (spec.text.empty()) return Error{std::string(grammar_kind_name(spec.kind)) + ": empty"};
  }
  std::string context = std::string("invalid ") + grammar_kind_name(spec.kind);
  auto compiled = xgrammar_call<xgrammar::CompiledGrammar>(
      context.c_str(), [&] { return compile_spec(compiler, spec, choices); });
  if (!compiled.ok()) return compiled.error();
  auto impl = std::make_unique<CompiledGrammar::Impl>(
      CompiledGrammar::Impl{std::move(compiled).value(), spec.kind, vocab});
  return std::shared_ptr<const CompiledGrammar>(std::make_shared<CompiledGrammar>(std::move(impl)));
}

}  // namespace dspark
