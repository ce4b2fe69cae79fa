// Jinja lexer: splits a template into text and tag tokens the way jinja2's lexer does with
// trim_blocks and lstrip_blocks on (newline normalization, one trailing newline dropped,
// "-"/"+" whitespace control, comments and {% raw %} handled here).
#pragma once

#include <string>
#include <vector>

namespace dspark::jinja {

struct Token {
  enum class Kind {
    Text,        // template data between tags (value: the text)
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,        // identifier or keyword
    String,      // string literal, escapes resolved
    Int,
    Float,
    Op,  // operator or punctuation: + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { } ;
    Eof,
  };
  Kind kind;
  std::string value;  // text, name, unescaped string, number literal, operator
  int line = 1;
  int col = 1;
};

// Throws TemplateError ("line L, column C: ...") on malformed input.
std::vector<Token> lex(const std::string& source);

}  // namespace dspark::jinja
