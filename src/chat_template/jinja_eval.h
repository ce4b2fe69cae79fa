// Jinja interpreter: renders a parsed template against a context with jinja2's semantics
// (scoping of set/for/macro, undefined handling, loop variables, whitespace already resolved
// by the lexer) under limits that keep hostile templates from exhausting time or memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja_ast.h"
#include "jinja_value.h"

namespace dspark::jinja {

// raise_exception(message) from a template: its message is passed on unchanged.
struct RaisedError : TemplateError {
  using TemplateError::TemplateError;
};

struct RenderLimits {
  size_t max_output_bytes = size_t{1} << 20;  // also bounds every string the template builds
  int64_t max_steps = 4'000'000;              // statements, loop iterations, built elements
  int max_call_depth = 48;                    // nested macro calls
};

class Interpreter {
 public:
  Interpreter(const Body& program, RenderLimits limits) : program_(program), limits_(limits) {}
  ~Interpreter();

  // The output with its marks: the bytes that came from marked strings of the context.
  MarkedText render(std::vector<std::pair<std::string, Value>> context);

  // Used by the builtins (filters that call back: map, select, sort by attribute, ...).
  Value call(const Value& callee, CallArgs& args);
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  void charge(int64_t steps);
  void check_size(size_t bytes) const;
  // Every namespace/loop object made during rendering, cleared at the end so reference cycles
  // a template builds (ns.self = ns) do not leak.
  NamespacePtr new_namespace(bool is_loop);

 private:
  struct Scope {
    std::vector<std::pair<std::string, Value>> vars;
    Scope* parent = nullptr;
    const Value* find(const std::string& name) const;
    void set(const std::string& name, Value v);
  };
  enum class Flow { Normal, Break, Continue };

  Flow exec_body(const Body& body, Scope& scope);
  Flow exec(const Stmt& s, Scope& scope);
  void exec_for(const Stmt& s, Scope& scope, Flow* flow);
  void assign(const Target& t, Value v, Scope& scope);
  MarkedText capture(const Body& body, Scope& scope);
  void emit(std::string_view text, const Marks& marks);
  Value define_macro(const Stmt& s);
  Value call_macro(const Stmt& s, CallArgs& args);

  Value eval(const Expr& e, Scope& scope);
  Value eval_inner(const Expr& e, Scope& scope);
  Value eval_call(const Expr& e, Scope& scope);
  // {% filter %} / {% set x | f %}: the chain's innermost subject is null and stands for v.
  Value filter_chain(const Expr& f, Value v, Scope& scope);
  CallArgs eval_args(const Expr& e, size_t first, Scope& scope);
  Value lookup(const std::string& name, Scope& scope);
  Value binary(const std::string& op, const Value& a, const Value& b);
  Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  bool compare_op(const std::string& op, const Value& a, const Value& b);

  const Body& program_;
  RenderLimits limits_;
  Scope* root_ = nullptr;
  MarkedText* out_ = nullptr;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  std::vector<NamespacePtr> namespaces_;
};

// Elements a for loop visits: list/tuple items, dict keys, string characters (with their
// marks); undefined is empty; anything else throws "'int' object is not iterable".
std::vector<Value> iterate(const Value& v);

}  // namespace dspark::jinja
