// Syntax tree of a parsed Jinja template: expressions and statements as jinja2's parser
// builds them, reduced to the constructs the interpreter supports.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja_value.h"

namespace dspark::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Const,     // value
    Name,      // name
    Getattr,   // args[0].name
    Getitem,   // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]] (missing bounds are null)
    Call,      // args[0](args[1..], kwargs)
    Filter,    // args[0] | name(args[1..], kwargs); args[0] null in {% filter %} / {% set %}
    Test,      // args[0] is name(args[1..], kwargs)
    Unary,     // name in {"-", "+", "not"}, args[0]
    Binary,    // args[0] name args[1], name in {+ - * / // % **}
    And,       // args[0] and args[1]
    Or,        // args[0] or args[1]
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ...; ops: == != < <= > >= in notin
    Concat,    // args[0] ~ args[1] ~ ...
    CondExpr,  // args[1] if args[0] else args[2] (args[2] null: undefined)
    List,      // [args...]
    Tuple,     // (args...)
    Dict,      // {args[0]: args[1], args[2]: args[3], ...}
  };
  Kind kind;
  int line = 0;
  int col = 0;
  int depth = 1;  // height of the subtree, bounded so evaluation cannot overflow the stack
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

// Assignment target: a name, a flat tuple of names, or namespace.attr.
struct Target {
  std::vector<std::string> names;
  bool tuple = false;
  std::string ns_attr;  // non-empty: names[0].ns_attr
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }} / {% print expr %}
    If,        // branches: (condition, body); a null condition is the else branch
    For,       // for target in expr [if cond] body [else else_body]
    Set,       // set target = expr
    SetBlock,  // set target [| filter] body endset (expr: the filter or null)
    Macro,     // macro name(params = defaults) body
    Break,
    Continue,
    FilterBlock,  // filter expr body endfilter
    With,         // with assigns body
    Block,        // body rendered in place ({% generation %})
  };
  Kind kind;
  int line = 0;
  int col = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  std::vector<std::pair<Target, ExprPtr>> assigns;
};

}  // namespace dspark::jinja
