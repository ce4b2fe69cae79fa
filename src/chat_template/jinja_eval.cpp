#include "jinja_eval.h"

#include <cmath>
#include <limits>

#include "jinja_builtins.h"
#include "jinja_text.h"

namespace dspark::jinja {
namespace {

using K = Expr::Kind;

// An error that already names its place in the template.
struct LocatedError : TemplateError {
  using TemplateError::TemplateError;
};

std::string where(int line, int col) {
  return "line " + std::to_string(line) + ", column " + std::to_string(col) + ": ";
}

// jinja2 names objects in attribute errors like "'dict object'".
std::string object_name(const Value& v) {
  return v.is_none() ? "None" : "'" + type_name(v) + " object'";
}

int64_t checked(int64_t a, int64_t b, char op) {
  int64_t r = 0;
  const bool overflow = op == '+'   ? __builtin_add_overflow(a, b, &r)
                        : op == '-' ? __builtin_sub_overflow(a, b, &r)
                                    : __builtin_mul_overflow(a, b, &r);
  if (overflow) throw TemplateError("integer overflow");
  return r;
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw TemplateError("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                      type_name(b) + "'");
}

}  // namespace

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return {};
    case Value::Type::List:
      return v.list().items;
    case Value::Type::Dict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.dict().items) keys.push_back(k);
      return keys;
    }
    case Value::Type::String: {
      std::vector<Value> chars;
      const auto cps = code_points(v.str());
      const auto flags = cp_marks(v.str(), v.marks());
      for (size_t i = 0; i < cps.size(); ++i)
        chars.push_back(Value::text(text_from_cps(cps, flags, {i})));
      return chars;
    }
    default:
      throw TemplateError("'" + type_name(v) + "' object is not iterable");
  }
}

// ---- scopes ----

const Value* Interpreter::Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent)
    for (const auto& [k, v] : s->vars)
      if (k == name) return &v;
  return nullptr;
}

void Interpreter::Scope::set(const std::string& name, Value v) {
  for (auto& [k, old] : vars) {
    if (k == name) {
      old = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

Interpreter::~Interpreter() {
  for (auto& ns : namespaces_) ns->attrs.clear();
}

NamespacePtr Interpreter::new_namespace(bool is_loop) {
  auto ns = std::make_shared<Namespace>();
  ns->is_loop = is_loop;
  // Loop contexts die with their iteration; only namespaces can be kept in cycles.
  if (!is_loop) namespaces_.push_back(ns);
  return ns;
}

void Interpreter::charge(int64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps)
    throw TemplateError("template exceeded its step limit (" + std::to_string(limits_.max_steps) +
                        " steps)");
}

void Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    throw TemplateError("template output exceeds " + std::to_string(limits_.max_output_bytes) +
                        " bytes");
}

void Interpreter::emit(std::string_view text, const Marks& marks) {
  check_size(out_->text.size() + text.size());
  charge(static_cast<int64_t>(text.size() / 256));
  out_->append(text, marks);
}

MarkedText Interpreter::render(std::vector<std::pair<std::string, Value>> context) {
  Scope root;
  root.vars = std::move(context);
  root_ = &root;
  MarkedText out;
  out_ = &out;
  exec_body(program_, root);
  return out;
}

// ---- statements ----

Interpreter::Flow Interpreter::exec_body(const Body& body, Scope& scope) {
  for (const auto& s : body) {
    const Flow f = exec(*s, scope);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

MarkedText Interpreter::capture(const Body& body, Scope& scope) {
  MarkedText buf;
  MarkedText* saved = out_;
  out_ = &buf;
  try {
    exec_body(body, scope);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buf;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, Scope& scope) {
  charge(1);
  switch (s.kind) {
    case Stmt::Kind::Text:
      emit(s.text, Marks());
      return Flow::Normal;
    case Stmt::Kind::Output: {
      const Value text = to_text(eval(*s.expr, scope));
      emit(text.str(), text.marks());
      return Flow::Normal;
    }
    case Stmt::Kind::If:
      for (const auto& [cond, body] : s.branches)
        if (!cond || truthy(eval(*cond, scope))) return exec_body(body, scope);
      return Flow::Normal;
    case Stmt::Kind::For: {
      Flow flow = Flow::Normal;
      exec_for(s, scope, &flow);
      return flow;
    }
    case Stmt::Kind::Set:
      assign(s.target, eval(*s.expr, scope), scope);
      return Flow::Normal;
    case Stmt::Kind::SetBlock: {
      Value text = Value::text(capture(s.body, scope));
      if (s.expr) text = filter_chain(*s.expr, std::move(text), scope);
      assign(s.target, std::move(text), scope);
      return Flow::Normal;
    }
    case Stmt::Kind::FilterBlock: {
      const Value text = to_text(filter_chain(*s.expr, Value::text(capture(s.body, scope)), scope));
      emit(text.str(), text.marks());
      return Flow::Normal;
    }
    case Stmt::Kind::Macro:
      scope.set(s.name, define_macro(s));
      return Flow::Normal;
    case Stmt::Kind::With: {
      Scope inner;
      inner.parent = &scope;
      for (const auto& [target, expr] : s.assigns) assign(target, eval(*expr, scope), inner);
      return exec_body(s.body, inner);
    }
    case Stmt::Kind::Block:
      return exec_body(s.body, scope);
    case Stmt::Kind::Break:
      return Flow::Break;
    case Stmt::Kind::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

void Interpreter::assign(const Target& t, Value v, Scope& scope) {
  if (!t.ns_attr.empty()) {
    const Value* ns = scope.find(t.names[0]);
    if (!ns || !ns->is(Value::Type::Namespace) || ns->ns()->is_loop)
      throw TemplateError("cannot assign attribute on non-namespace object '" + t.names[0] + "'");
    ns->ns()->set(t.ns_attr, std::move(v));
    return;
  }
  if (!t.tuple) {
    scope.set(t.names[0], std::move(v));
    return;
  }
  std::vector<Value> items = iterate(v);
  if (items.size() != t.names.size())
    throw TemplateError(
        items.size() > t.names.size()
            ? "too many values to unpack (expected " + std::to_string(t.names.size()) + ")"
            : "not enough values to unpack (expected " + std::to_string(t.names.size()) + ", got " +
                  std::to_string(items.size()) + ")");
  for (size_t i = 0; i < items.size(); ++i) scope.set(t.names[i], std::move(items[i]));
}

void Interpreter::exec_for(const Stmt& s, Scope& scope, Flow* flow) {
  const Value seq = eval(*s.expr, scope);
  std::vector<Value> items = iterate(seq);
  charge(static_cast<int64_t>(items.size()));
  if (s.cond) {
    std::vector<Value> kept;
    for (auto& item : items) {
      Scope probe;
      probe.parent = &scope;
      assign(s.target, item, probe);
      if (truthy(eval(*s.cond, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    Scope inner;
    inner.parent = &scope;
    // The else block sits outside the loop: its break/continue belong to an enclosing loop.
    *flow = exec_body(s.else_body, inner);
    return;
  }
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    charge(1);
    NamespacePtr loop = new_namespace(true);
    loop->attrs = {
        {"index", Value::integer(i + 1)},    {"index0", Value::integer(i)},
        {"revindex", Value::integer(n - i)}, {"revindex0", Value::integer(n - i - 1)},
        {"first", Value::boolean(i == 0)},   {"last", Value::boolean(i == n - 1)},
        {"length", Value::integer(n)},       {"depth", Value::integer(1)},
        {"depth0", Value::integer(0)},
    };
    if (i > 0) loop->attrs.emplace_back("previtem", items[i - 1]);
    if (i + 1 < n) loop->attrs.emplace_back("nextitem", items[i + 1]);
    auto cycle = std::make_shared<Callable>();
    cycle->name = "cycle";
    cycle->fn = [i](CallArgs& a) -> Value {
      if (a.args.empty()) throw TemplateError("no items for cycling given");
      return a.args[static_cast<size_t>(i) % a.args.size()];
    };
    loop->attrs.emplace_back("cycle", Value::callable(std::move(cycle)));
    Scope inner;
    inner.parent = &scope;
    inner.set("loop", Value::ns(std::move(loop)));
    assign(s.target, items[static_cast<size_t>(i)], inner);
    if (exec_body(s.body, inner) == Flow::Break) break;
  }
}

Value Interpreter::define_macro(const Stmt& s) {
  auto c = std::make_shared<Callable>();
  c->name = s.name;
  c->fn = [this, &s](CallArgs& args) { return call_macro(s, args); };
  return Value::callable(std::move(c));
}

Value Interpreter::call_macro(const Stmt& s, CallArgs& args) {
  if (call_depth_ >= limits_.max_call_depth)
    throw TemplateError("macro calls nest too deeply (limit " +
                        std::to_string(limits_.max_call_depth) + ")");
  if (args.args.size() > s.params.size())
    throw TemplateError("macro '" + s.name + "' takes not more than " +
                        std::to_string(s.params.size()) + " argument(s)");
  Scope scope;
  scope.parent = root_;
  for (size_t i = 0; i < s.params.size(); ++i) {
    const std::string& p = s.params[i];
    if (i < args.args.size()) {
      scope.set(p, args.args[i]);
      continue;
    }
    const Value* kw = nullptr;
    for (const auto& [k, v] : args.kwargs)
      if (k == p) kw = &v;
    const size_t first_default = s.params.size() - s.defaults.size();
    if (kw)
      scope.set(p, *kw);
    else if (i >= first_default)
      scope.set(p, eval(*s.defaults[i - first_default], scope));
    else
      scope.set(p, Value::undefined("parameter '" + p + "' was not provided"));
  }
  for (const auto& [k, v] : args.kwargs) {
    bool known = false;
    for (const auto& p : s.params) known = known || p == k;
    if (!known) throw TemplateError("macro '" + s.name + "' takes no keyword argument '" + k + "'");
  }
  charge(1);
  ++call_depth_;
  MarkedText text;
  try {
    text = capture(s.body, scope);
  } catch (...) {
    --call_depth_;
    throw;
  }
  --call_depth_;
  return Value::text(std::move(text));
}

// ---- expressions ----

Value Interpreter::eval(const Expr& e, Scope& scope) {
  try {
    Value v = eval_inner(e, scope);
    // Values the template builds cost steps by size, so loops that keep rebuilding large
    // strings or lists stay within the step budget.
    if (e.kind == K::Filter || e.kind == K::Call || e.kind == K::Binary || e.kind == K::Concat) {
      if (v.is_string()) charge(static_cast<int64_t>(v.str().size() / 256));
      if (v.is(Value::Type::List)) charge(static_cast<int64_t>(v.list().items.size()));
    }
    return v;
  } catch (const LocatedError&) {
    throw;
  } catch (const RaisedError&) {
    throw;
  } catch (const TemplateError& err) {
    throw LocatedError(where(e.line, e.col) + err.what());
  }
}

Value Interpreter::lookup(const std::string& name, Scope& scope) {
  if (const Value* v = scope.find(name)) return *v;
  Value global = global_function(*this, name);
  if (!global.is_undefined()) return global;
  return Value::undefined("'" + name + "' is undefined");
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) throw_undefined(obj);
  if (!name.empty() && name[0] == '_')
    return Value::undefined("access to '" + name + "' is unsafe");
  if (has_method(obj, name)) return bound_method(*this, obj, name);
  const std::string missing = object_name(obj) + " has no attribute '" + name + "'";
  if (obj.is(Value::Type::Dict)) {
    if (const Value* v = obj.dict().find(std::string_view(name))) return *v;
  } else if (obj.is(Value::Type::Namespace)) {
    if (const Value* v = obj.ns()->find(name)) return *v;
  }
  return Value::undefined(missing);
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) throw_undefined(obj);
  switch (obj.type()) {
    case Value::Type::Dict:
      if (const Value* v = obj.dict().find(key)) return *v;
      break;
    case Value::Type::List:
      if (key.is_integral() && !obj.list().generator) {
        const auto& items = obj.list().items;
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
      }
      break;
    case Value::Type::String:
      if (key.is_integral()) {
        if (auto c = char_at(obj, key.as_int())) return *c;
      }
      break;
    default:
      break;
  }
  // jinja2 falls back to the attribute of that name (obj["items"] is the dict method).
  if (key.is_string() && !obj.is(Value::Type::Dict)) return getattr(obj, key.str());
  if (key.is_string() && has_method(obj, key.str())) return bound_method(*this, obj, key.str());
  return Value::undefined(object_name(obj) + " has no element " + repr(key));
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) throw_undefined(callee);
  if (!callee.is(Value::Type::Callable))
    throw TemplateError("'" + type_name(callee) + "' object is not callable");
  return callee.callable().fn(args);
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first, Scope& scope) {
  CallArgs a;
  for (size_t i = first; i < e.args.size(); ++i) a.args.push_back(eval(*e.args[i], scope));
  for (const auto& [k, v] : e.kwargs) a.kwargs.emplace_back(k, eval(*v, scope));
  return a;
}

Value Interpreter::eval_call(const Expr& e, Scope& scope) {
  const Expr& callee = *e.args[0];
  if (callee.kind == K::Getattr) {
    // Method calls go straight to the builtin without materializing a bound method.
    Value obj = eval(*callee.args[0], scope);
    if (!obj.is_undefined() && has_method(obj, callee.name)) {
      CallArgs a = eval_args(e, 1, scope);
      return call_method(*this, obj, callee.name, a);
    }
    Value fn = getattr(obj, callee.name);
    CallArgs a = eval_args(e, 1, scope);
    return call(fn, a);
  }
  Value fn = eval(callee, scope);
  CallArgs a = eval_args(e, 1, scope);
  return call(fn, a);
}

Value Interpreter::eval_inner(const Expr& e, Scope& scope) {
  switch (e.kind) {
    case K::Const:
      return e.value;
    case K::Name:
      return lookup(e.name, scope);
    case K::Getattr:
      return getattr(eval(*e.args[0], scope), e.name);
    case K::Getitem: {
      Value obj = eval(*e.args[0], scope);
      return getitem(obj, eval(*e.args[1], scope));
    }
    case K::Slice: {
      Value obj = eval(*e.args[0], scope);
      auto opt = [&](size_t i) { return e.args[i] ? eval(*e.args[i], scope) : Value::none(); };
      Value start = opt(1);
      Value stop = opt(2);
      return slice(obj, start, stop, opt(3));
    }
    case K::Call:
      return eval_call(e, scope);
    case K::Filter: {
      Value subject = eval(*e.args[0], scope);
      CallArgs a = eval_args(e, 1, scope);
      return apply_filter(*this, e.name, std::move(subject), a);
    }
    case K::Test: {
      Value subject = eval(*e.args[0], scope);
      CallArgs a = eval_args(e, 1, scope);
      return Value::boolean(apply_test(*this, e.name, subject, a));
    }
    case K::Unary: {
      Value v = eval(*e.args[0], scope);
      if (e.name == "not") return Value::boolean(!truthy(v));
      if (v.is_undefined()) throw_undefined(v);
      if (!v.is_number())
        throw TemplateError("bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
      if (e.name == "+") return v.is(Value::Type::Bool) ? Value::integer(v.as_int()) : v;
      if (v.is(Value::Type::Float)) return Value::number(-v.as_float());
      return Value::integer(checked(0, v.as_int(), '-'));
    }
    case K::Binary: {
      // Left before right, as Python evaluates (macros called here may touch namespaces).
      Value left = eval(*e.args[0], scope);
      return binary(e.name, left, eval(*e.args[1], scope));
    }
    case K::And: {
      Value a = eval(*e.args[0], scope);
      return truthy(a) ? eval(*e.args[1], scope) : a;
    }
    case K::Or: {
      Value a = eval(*e.args[0], scope);
      return truthy(a) ? a : eval(*e.args[1], scope);
    }
    case K::Compare: {
      Value left = eval(*e.args[0], scope);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.args[i + 1], scope);
        if (!compare_op(e.ops[i], left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case K::Concat: {
      MarkedText s;
      for (const auto& a : e.args) {
        const Value piece = to_text(eval(*a, scope));
        s.append(piece.str(), piece.marks());
        check_size(s.text.size());
      }
      return Value::text(std::move(s));
    }
    case K::CondExpr:
      if (truthy(eval(*e.args[0], scope))) return eval(*e.args[1], scope);
      if (e.args[2]) return eval(*e.args[2], scope);
      return Value::undefined(
          "the inline if-expression evaluated to false and no else section was defined");
    case K::List:
    case K::Tuple: {
      std::vector<Value> items;
      for (const auto& a : e.args) items.push_back(eval(*a, scope));
      return make_list(std::move(items), e.kind == K::Tuple);
    }
    case K::Dict: {
      std::vector<std::pair<Value, Value>> items;
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value key = eval(*e.args[i], scope);
        items.emplace_back(std::move(key), eval(*e.args[i + 1], scope));
      }
      return make_dict(std::move(items));
    }
  }
  return Value();
}

Value Interpreter::filter_chain(const Expr& f, Value v, Scope& scope) {
  if (f.args[0]) v = filter_chain(*f.args[0], std::move(v), scope);
  CallArgs a = eval_args(f, 1, scope);
  return apply_filter(*this, f.name, std::move(v), a);
}

bool Interpreter::compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in" || op == "notin") return contains(b, a) == (op == "in");
  const int c = compare(a, b, op);
  if (c == 2) return false;
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

Value Interpreter::binary(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
  if (a.is_number() && b.is_number()) {
    const bool ints = a.is_integral() && b.is_integral();
    if (op == "+" || op == "-" || op == "*") {
      if (ints) return Value::integer(checked(a.as_int(), b.as_int(), op[0]));
      const double x = a.as_float(), y = b.as_float();
      return Value::number(op == "+" ? x + y : op == "-" ? x - y : x * y);
    }
    if (op == "/") {
      if (b.as_float() == 0.0) throw TemplateError("division by zero");
      return Value::number(a.as_float() / b.as_float());
    }
    if (op == "//" || op == "%") {
      if (ints) {
        const int64_t x = a.as_int(), y = b.as_int();
        if (y == 0) throw TemplateError("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1)
          throw TemplateError("integer overflow");
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::integer(op == "//" ? q : r);
      }
      const double x = a.as_float(), y = b.as_float();
      if (y == 0.0) throw TemplateError("float division by zero");
      double r = std::fmod(x, y);
      if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
      if (op == "%") return Value::number(r);
      // Python's float floor division: exact quotient from fmod, then floored.
      double mod = std::fmod(x, y);
      double div = (x - mod) / y;
      if (mod != 0.0 && ((y < 0) != (mod < 0))) div -= 1.0;
      if (div == 0.0) return Value::number(std::copysign(0.0, x / y));
      double fd = std::floor(div);
      if (div - fd > 0.5) fd += 1.0;
      return Value::number(fd);
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        // Exponentiation by squaring; overflow is an error (Python would grow a big int).
        int64_t result = 1, base = a.as_int(), e = b.as_int();
        while (e > 0) {
          if (e & 1) result = checked(result, base, '*');
          e >>= 1;
          if (e > 0) base = checked(base, base, '*');
        }
        return Value::integer(result);
      }
      if (a.as_float() == 0.0 && b.as_float() < 0)
        throw TemplateError("0.0 cannot be raised to a negative power");
      return Value::number(std::pow(a.as_float(), b.as_float()));
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      check_size(a.str().size() + b.str().size());
      if (!a.is_content() && !b.is_content()) return Value::string(a.str() + b.str());
      MarkedText s;
      s.append(a.str(), a.marks());
      s.append(b.str(), b.marks());
      return Value::text(std::move(s));
    }
    if (a.is(Value::Type::List) && b.is(Value::Type::List) && a.list().tuple == b.list().tuple &&
        !is_generator(a) && !is_generator(b)) {
      charge(static_cast<int64_t>(a.list().items.size() + b.list().items.size()));
      std::vector<Value> items = a.list().items;
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return make_list(std::move(items), a.list().tuple);
    }
    if (a.is_string())
      throw TemplateError("can only concatenate str (not \"" + type_name(b) + "\") to str");
  }
  if (op == "*") {
    const bool a_seq = a.is_string() || a.is(Value::Type::List);
    const Value& seq = a_seq ? a : b;
    const Value& count = a_seq ? b : a;
    if ((seq.is_string() || (seq.is(Value::Type::List) && !is_generator(seq))) &&
        count.is_integral()) {
      const int64_t n = std::max<int64_t>(0, count.as_int());
      const size_t unit = seq.is_string() ? seq.str().size() : seq.list().items.size();
      if (n == 0 || unit == 0)
        return seq.is_string() ? Value::string("") : make_list({}, seq.list().tuple);
      // Bound the result before building it: n can be huge.
      if (static_cast<uint64_t>(n) > limits_.max_output_bytes / unit + 1)
        check_size(limits_.max_output_bytes + 1);
      const size_t total = unit * static_cast<size_t>(n);
      if (seq.is_string()) {
        check_size(total);
        MarkedText s;
        s.text.reserve(total);
        for (int64_t i = 0; i < n; ++i) s.append(seq.str(), seq.marks());
        return Value::text(std::move(s));
      }
      charge(static_cast<int64_t>(total));
      std::vector<Value> items;
      for (int64_t i = 0; i < n; ++i)
        items.insert(items.end(), seq.list().items.begin(), seq.list().items.end());
      return make_list(std::move(items), seq.list().tuple);
    }
  }
  if (op == "%" && a.is_string())
    throw TemplateError("printf-style string formatting ('%') is not supported");
  unsupported(op, a, b);
}

Value Interpreter::slice(const Value& obj, const Value& start, const Value& stop,
                         const Value& step) {
  if (obj.is_undefined()) throw_undefined(obj);
  auto bound = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (!v.is_integral())
      throw TemplateError(std::string("slice ") + what + " must be an integer or None");
    return v.as_int();
  };
  const int64_t st = bound(step, "step").value_or(1);
  if (st == 0) throw TemplateError("slice step cannot be zero");
  std::vector<char32_t> cps;
  std::vector<bool> flags;  // per code point: marked
  const std::vector<Value>* items = nullptr;
  int64_t n = 0;
  if (obj.is_string()) {
    cps = code_points(obj.str());
    flags = cp_marks(obj.str(), obj.marks());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is(Value::Type::List) && !is_generator(obj)) {
    items = &obj.list().items;
    n = static_cast<int64_t>(items->size());
  } else {
    return Value::undefined(object_name(obj) + " is not subscriptable");
  }
  // Python's slice.indices().
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0)
      x = std::max<int64_t>(x + n, st < 0 ? -1 : 0);
    else
      x = std::min<int64_t>(x, st < 0 ? n - 1 : n);
    return x;
  };
  const int64_t b = clamp(bound(start, "start"), st < 0 ? n - 1 : 0);
  const int64_t e = clamp(bound(stop, "stop"), st < 0 ? -1 : n);
  std::vector<size_t> picks;
  for (int64_t i = b; st > 0 ? i < e : i > e;) {
    picks.push_back(static_cast<size_t>(i));
    if (__builtin_add_overflow(i, st, &i)) break;
  }
  charge(static_cast<int64_t>(picks.size()));
  if (obj.is_string()) return Value::text(text_from_cps(cps, flags, picks));
  std::vector<Value> out;
  for (size_t i : picks) out.push_back((*items)[i]);
  return make_list(std::move(out), obj.list().tuple);
}

}  // namespace dspark::jinja
