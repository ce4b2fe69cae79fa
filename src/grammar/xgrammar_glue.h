// The xgrammar objects behind grammar.h's classes, and the one place that turns xgrammar's
// exceptions into Errors. Private to src/grammar.
#pragma once

#include <xgrammar/dspark_log.h>
#include <xgrammar/xgrammar.h>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dspark/grammar.h"

namespace dspark {

struct GrammarVocab::Impl {
  xgrammar::TokenizerInfo info;
  int32_t size = 0;
  std::vector<int32_t> eos_ids;
};

struct CompiledGrammar::Impl {
  xgrammar::CompiledGrammar compiled;
  GrammarKind kind;
  std::shared_ptr<const GrammarVocab> vocab;
  std::vector<std::string> warnings;  // what xgrammar ignored (GrammarSpec::ignore_unsupported)
};

struct GrammarMatcher::Impl {
  std::shared_ptr<const GrammarVocab> vocab;
  xgrammar::CompiledGrammar compiled;  // a shared handle: keeps the grammar alive
  xgrammar::GrammarMatcher matcher;
  int accepted = 0;
  std::vector<uint32_t> scratch;  // [mask_words] for forced_token()
};

// xgrammar reports bad input by throwing (XGRAMMAR_CHECK / LOG(FATAL) throw LogFatalError, a
// std::runtime_error; schema errors throw XGrammarError). Its message, without the assertion
// text "Check failed: (...) is false: " that its checks prepend.
std::string xgrammar_message(const std::exception& e);

// Runs f() and turns any exception into Error{context + ": " + message}.
template <class T, class F>
Result<T> xgrammar_call(const char* context, F&& f) {
  try {
    return Result<T>(f());
  } catch (const std::exception& e) {
    return Error{std::string(context) + ": " + xgrammar_message(e)};
  } catch (...) {
    return Error{std::string(context) + ": unknown error"};
  }
}

// A compiled grammar for a vocabulary, without the cache (compiler.cpp).
Result<std::shared_ptr<const CompiledGrammar>> compile_grammar(
    xgrammar::GrammarCompiler& compiler, const std::shared_ptr<const GrammarVocab>& vocab,
    const GrammarSpec& spec);

// The first JSON Schema keyword in schema_text that xgrammar would ignore without a word, as
// "the keyword 'not' (at #/properties/a) is not supported"; nullopt if none (schema_check.cpp).
std::optional<std::string> unsupported_schema_keyword(const std::string& schema_text);

// EBNF for "exactly one of these strings" (spec.cpp). Empty choices: an error.
Result<std::string> choice_ebnf(const std::vector<std::string>& choices);
// s as an EBNF string literal: printable ASCII as is (quote and backslash escaped), other ASCII
// bytes as \xHH, multi-byte UTF-8 characters as is.
std::string ebnf_literal(const std::string& s);

}  // namespace dspark
