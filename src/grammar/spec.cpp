// GrammarSpec: constructors, cache keys, and the EBNF a choice list compiles to.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/text.h"
#include "xgrammar_glue.h"

namespace dspark {

const char* grammar_kind_name(GrammarKind kind) {
  switch (kind) {
    case GrammarKind::JsonSchema:
      return "json_schema";
    case GrammarKind::JsonObject:
      return "json_object";
    case GrammarKind::Regex:
      return "regex";
    case GrammarKind::Choice:
      return "choice";
    case GrammarKind::Ebnf:
      return "ebnf";
  }
  return "unknown";
}

GrammarSpec GrammarSpec::json_schema(std::string schema, bool strict) {
  GrammarSpec s;
  s.kind = GrammarKind::JsonSchema;
  s.text = std::move(schema);
  s.strict = strict;
  return s;
}

GrammarSpec GrammarSpec::json_object() {
  return GrammarSpec{};
}

GrammarSpec GrammarSpec::regex(std::string pattern) {
  GrammarSpec s;
  s.kind = GrammarKind::Regex;
  s.text = std::move(pattern);
  return s;
}

GrammarSpec GrammarSpec::choice(std::vector<std::string> choices) {
  GrammarSpec s;
  s.kind = GrammarKind::Choice;
  s.choices = std::move(choices);
  return s;
}

GrammarSpec GrammarSpec::ebnf(std::string grammar) {
  GrammarSpec s;
  s.kind = GrammarKind::Ebnf;
  s.text = std::move(grammar);
  return s;
}

namespace {
// Appends a length-prefixed field so that no two specs share a key.
void put_field(std::string* key, const std::string& field) {
  *key += std::to_string(field.size());
  *key += ':';
  *key += field;
}
}  // namespace

std::string GrammarSpec::key() const {
  std::string key = grammar_kind_name(kind);
  key += any_whitespace ? "|ws" : "|compact";
  key += strict ? "|strict" : "|loose";
  key += ignore_unsupported ? "|lenient|" : "|exact|";
  if (kind == GrammarKind::Choice) {
    key += std::to_string(choices.size());
    for (const std::string& c : choices) put_field(&key, c);
  } else if (kind != GrammarKind::JsonObject) {
    put_field(&key, text);
  }
  if (kind == GrammarKind::JsonSchema || kind == GrammarKind::JsonObject) {
    put_field(&key, prefix);
    put_field(&key, suffix);
  }
  return key;
}

// One choice as an EBNF string literal: printable ASCII as is (quote and backslash escaped),
// other ASCII bytes as \xHH; multi-byte UTF-8 characters as is (the parser reads code points).
std::string ebnf_literal(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

Result<std::string> choice_ebnf(const std::vector<std::string>& choices) {
  if (choices.empty()) return Error{"choice: the list of choices is empty"};
  std::string ebnf = "root ::= ";
  for (size_t i = 0; i < choices.size(); ++i) {
    const std::string& c = choices[i];
    if (c.empty()) return Error{"choice: choice " + std::to_string(i) + " is an empty string"};
    if (!utf8_is_valid(c)) {
      return Error{"choice: choice " + std::to_string(i) + " is not valid UTF-8"};
    }
    if (i > 0) ebnf += " | ";
    ebnf += ebnf_literal(c);
  }
  return ebnf;
}

}  // namespace dspark
