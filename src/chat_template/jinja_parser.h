// Jinja parser: tokens to a statement tree, following jinja2's grammar (operator precedence,
// tuples, filters and tests, for/if/set/macro/with/filter blocks, loop controls). Constructs
// outside the supported subset (include, extends, call blocks, unknown filters/tests, ...) are
// rejected with their line and column.
#pragma once

#include <string>

#include "jinja_ast.h"

namespace dspark::jinja {

// Nesting limits that keep parsing and evaluation recursion bounded.
inline constexpr int kMaxExprDepth = 256;
inline constexpr int kMaxNesting = 96;

// Throws TemplateError ("line L, column C: ...").
Body parse_template(const std::string& source);

}  // namespace dspark::jinja
