#include "jinja_parser.h"

#include <algorithm>
#include <charconv>
#include <initializer_list>

#include "jinja_builtins.h"
#include "jinja_lexer.h"

namespace dspark::jinja {
namespace {

using K = Expr::Kind;
using TK = Token::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body run() {
    Body body = subparse({});
    if (cur().kind != TK::Eof) fail("unexpected '" + cur().value + "'");
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().kind == TK::Op && cur().value == op; }
  bool is_name(const char* n) const { return cur().kind == TK::Name && cur().value == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail(const std::string& what) const { fail_at(cur(), what); }
  [[noreturn]] static void fail_at(const Token& t, const std::string& what) {
    throw TemplateError("line " + std::to_string(t.line) + ", column " + std::to_string(t.col) +
                        ": " + what);
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TK::Eof:
        return "end of template";
      case TK::BlockEnd:
        return "end of statement block";
      case TK::VarEnd:
        return "end of print statement";
      case TK::Text:
        return "template data";
      case TK::String:
        return "string";
      default:
        return "'" + t.value + "'";
    }
  }

  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().kind != TK::Name) fail("expected a name, got " + describe(cur()));
    return next().value;
  }
  void expect_kind(TK kind, const char* what) {
    if (cur().kind != kind) fail(std::string("expected ") + what + ", got " + describe(cur()));
    next();
  }

  // ---- nesting guard ----
  struct Nest {
    explicit Nest(Parser* p) : p_(p) {
      if (++p_->nesting_ > kMaxNesting) p_->fail("template nests too deeply");
    }
    ~Nest() { --p_->nesting_; }
    Parser* p_;
  };

  ExprPtr node(K kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->col = at.col;
    return e;
  }
  // Finishes a node: its depth from its children, bounded.
  ExprPtr done(ExprPtr e) {
    int d = 0;
    for (const auto& a : e->args)
      if (a) d = std::max(d, a->depth);
    for (const auto& [k, a] : e->kwargs) d = std::max(d, a->depth);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth)
      fail_at(Token{TK::Eof, "", e->line, e->col}, "expression nests too deeply");
    return e;
  }

  // ---- statements ----
  Body subparse(std::initializer_list<const char*> end_tags) {
    Nest guard(this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == TK::Eof) {
        if (end_tags.size() == 0) return body;
        std::string names;
        for (const char* n : end_tags)
          names += std::string(names.empty() ? "" : " or ") + "'" + n + "'";
        fail("unexpected end of template, expected " + names);
      }
      if (t.kind == TK::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->text = t.value;
        body.push_back(std::move(s));
        next();
      } else if (t.kind == TK::VarBegin) {
        next();
        auto s = stmt(Stmt::Kind::Output, t);
        s->expr = parse_tuple(true, {});
        expect_kind(TK::VarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.kind == TK::BlockBegin) {
        next();
        if (cur().kind == TK::Name)
          for (const char* n : end_tags)
            if (cur().value == n) return body;
        body.push_back(parse_statement());
        expect_kind(TK::BlockEnd, "'%}'");
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  std::unique_ptr<Stmt> stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->col = at.col;
    return s;
  }

  // Consumes "%}" then the body up to one of end_tags (left as the current token).
  Body block_body(std::initializer_list<const char*> end_tags) {
    expect_kind(TK::BlockEnd, "'%}'");
    return subparse(end_tags);
  }

  std::unique_ptr<Stmt> parse_statement() {
    const Token& t = cur();
    if (t.kind != TK::Name) fail("tag name expected");
    const std::string tag = t.value;
    if (tag == "for") return parse_for();
    if (tag == "if") return parse_if();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "with") return parse_with();
    if (tag == "filter") {
      auto s = stmt(Stmt::Kind::FilterBlock, next());
      s->expr = parse_filter(nullptr, true);
      s->body = block_body({"endfilter"});
      next();
      return s;
    }
    if (tag == "print") {
      auto s = stmt(Stmt::Kind::Output, next());
      s->expr = parse_tuple(true, {});
      return s;
    }
    if (tag == "generation") {
      // Hugging Face's AssistantTracker tag: marks assistant text, renders its body unchanged.
      auto s = stmt(Stmt::Kind::Block, next());
      s->body = block_body({"endgeneration"});
      next();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a loop");
      return stmt(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, next());
    }
    static const char* unsupported[] = {"block", "extends", "include",    "import",
                                        "from",  "call",    "autoescape", "raw"};
    for (const char* u : unsupported)
      if (tag == u) fail("the '" + tag + "' tag is not supported");
    fail("unknown or unexpected tag '" + tag + "'");
  }

  std::unique_ptr<Stmt> parse_for() {
    auto s = stmt(Stmt::Kind::For, next());
    s->target = parse_target(/*stop_at_in=*/true);
    if (!skip_name("in")) fail("expected 'in', got " + describe(cur()));
    s->expr = parse_tuple(false, {"recursive"});
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) fail("recursive loops are not supported");
    ++loop_depth_;
    s->body = block_body({"endfor", "else"});
    --loop_depth_;
    if (next().value == "else") {
      s->else_body = block_body({"endfor"});
      next();
    }
    return s;
  }

  std::unique_ptr<Stmt> parse_if() {
    auto s = stmt(Stmt::Kind::If, next());
    while (true) {
      ExprPtr cond = parse_tuple(false, {});
      Body body = block_body({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      const std::string tag = next().value;
      if (tag == "elif") continue;
      if (tag == "else") {
        s->branches.emplace_back(nullptr, block_body({"endif"}));
        next();
      }
      return s;
    }
  }

  std::unique_ptr<Stmt> parse_set() {
    auto s = stmt(Stmt::Kind::Set, next());
    if (cur().kind == TK::Name && peek().kind == TK::Op && peek().value == ".") {
      s->target.names.push_back(next().value);
      next();
      s->target.ns_attr = expect_name();
    } else {
      s->target = parse_target(false);
    }
    if (skip_op("=")) {
      s->expr = parse_tuple(true, {});
      return s;
    }
    s->kind = Stmt::Kind::SetBlock;
    if (is_op("|")) s->expr = parse_filter(nullptr, false);
    s->body = block_body({"endset"});
    next();
    return s;
  }

  std::unique_ptr<Stmt> parse_macro() {
    auto s = stmt(Stmt::Kind::Macro, next());
    s->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      s->params.push_back(expect_name());
      if (skip_op("="))
        s->defaults.push_back(parse_expression(true));
      else if (!s->defaults.empty())
        fail("non-default argument follows default argument");
    }
    next();
    const int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = block_body({"endmacro"});
    loop_depth_ = saved;
    next();
    return s;
  }

  std::unique_ptr<Stmt> parse_with() {
    auto s = stmt(Stmt::Kind::With, next());
    while (cur().kind != TK::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target t = parse_target(false);
      expect_op("=");
      s->assigns.emplace_back(std::move(t), parse_expression(true));
    }
    s->body = block_body({"endwith"});
    next();
    return s;
  }

  // A name or a flat tuple of names ("a", "a, b", "(a, b)").
  Target parse_target(bool stop_at_in) {
    Target t;
    const bool parens = skip_op("(");
    while (true) {
      if (cur().kind != TK::Name) fail("can't assign to " + describe(cur()));
      t.names.push_back(next().value);
      if (!is_op(",")) break;
      next();
      t.tuple = true;
      if ((stop_at_in && is_name("in")) || is_op("=") || is_op(")")) break;
    }
    if (parens) {
      expect_op(")");
      t.tuple = true;
    }
    return t;
  }

  // ---- expressions ----
  bool is_tuple_end(std::initializer_list<const char*> extra) const {
    const Token& t = cur();
    if (t.kind == TK::VarEnd || t.kind == TK::BlockEnd || t.kind == TK::Eof) return true;
    if (t.kind == TK::Op && t.value == ")") return true;
    for (const char* n : extra)
      if (t.kind == TK::Name && t.value == n) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra,
                      bool explicit_parens = false) {
    const Token& start = cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail("expected an expression, got " + describe(cur()));
    }
    auto e = node(K::Tuple, start);
    e->args = std::move(items);
    return done(std::move(e));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest guard(this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr expr1 = parse_or();
    while (is_name("if")) {
      auto e = node(K::CondExpr, next());
      ExprPtr test = parse_or();
      ExprPtr other = skip_name("else") ? parse_expression(true) : nullptr;
      e->args.push_back(std::move(test));
      e->args.push_back(std::move(expr1));
      e->args.push_back(std::move(other));
      expr1 = done(std::move(e));
    }
    return expr1;
  }

  ExprPtr binary(K kind, const Token& at, ExprPtr a, ExprPtr b, std::string name = {}) {
    auto e = node(kind, at);
    e->name = std::move(name);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return done(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Token& t = next();
      left = binary(K::Or, t, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Token& t = next();
      left = binary(K::And, t, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest guard(this);
      auto e = node(K::Unary, next());
      e->name = "not";
      e->args.push_back(parse_not());
      return done(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& start = cur();
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      const Token& t = cur();
      if (t.kind == TK::Op && (t.value == "==" || t.value == "!=" || t.value == "<" ||
                               t.value == "<=" || t.value == ">" || t.value == ">=")) {
        op = t.value;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().kind == TK::Name && peek().value == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(K::Compare, start);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? done(std::move(cmp)) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      left = binary(K::Binary, t, std::move(left), parse_concat(), t.value);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Token& start = cur();
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(K::Concat, start);
    e->args.push_back(std::move(first));
    while (skip_op("~")) e->args.push_back(parse_math2());
    return done(std::move(e));
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      left = binary(K::Binary, t, std::move(left), parse_pow(), t.value);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      left = binary(K::Binary, t, std::move(left), parse_unary(true), "**");
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest guard(this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      e = node(K::Unary, t);
      e->name = t.value;
      e->args.push_back(parse_unary(false));
      e = done(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    if (t.kind == TK::Name) {
      next();
      auto e = node(K::Const, t);
      if (t.value == "true" || t.value == "True") {
        e->value = Value::boolean(true);
      } else if (t.value == "false" || t.value == "False") {
        e->value = Value::boolean(false);
      } else if (t.value == "none" || t.value == "None") {
        e->value = Value::none();
      } else {
        e->kind = K::Name;
        e->name = t.value;
      }
      return done(std::move(e));
    }
    if (t.kind == TK::String) {
      auto e = node(K::Const, t);
      std::string s;
      while (cur().kind == TK::String) s += next().value;  // adjacent literals concatenate
      e->value = Value::string(std::move(s));
      return done(std::move(e));
    }
    if (t.kind == TK::Int || t.kind == TK::Float) {
      next();
      auto e = node(K::Const, t);
      if (t.kind == TK::Int) {
        int64_t v = 0;
        std::from_chars(t.value.data(), t.value.data() + t.value.size(), v);
        e->value = Value::integer(v);
      } else {
        e->value = Value::number(std::strtod(t.value.c_str(), nullptr));
      }
      return done(std::move(e));
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      auto e = node(K::List, next());
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      next();
      return done(std::move(e));
    }
    if (is_op("{")) {
      auto e = node(K::Dict, next());
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      next();
      return done(std::move(e));
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e), false);
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token& t = next();
    if (t.value == ".") {
      const Token& attr = next();
      if (attr.kind == TK::Name) {
        auto e = node(K::Getattr, t);
        e->name = attr.value;
        e->args.push_back(std::move(obj));
        return done(std::move(e));
      }
      if (attr.kind != TK::Int) fail_at(attr, "expected name or number after '.'");
      auto key = node(K::Const, attr);
      int64_t v = 0;
      std::from_chars(attr.value.data(), attr.value.data() + attr.value.size(), v);
      key->value = Value::integer(v);
      auto e = node(K::Getitem, t);
      e->args.push_back(std::move(obj));
      e->args.push_back(done(std::move(key)));
      return done(std::move(e));
    }
    ExprPtr first;
    if (is_op("]") || !is_op(":")) {
      // An index; "x[]" and "x[a, b]" index with a tuple, as in jinja2.
      if (!is_op("]")) first = parse_expression(true);
      if (is_op("]") || is_op(",")) {
        if (!first || is_op(",")) {
          auto key = node(K::Tuple, t);
          if (first) key->args.push_back(std::move(first));
          while (skip_op(",") && !is_op("]")) key->args.push_back(parse_expression(true));
          first = done(std::move(key));
        }
        expect_op("]");
        auto e = node(K::Getitem, t);
        e->args.push_back(std::move(obj));
        e->args.push_back(std::move(first));
        return done(std::move(e));
      }
    }
    next();  // ':'
    auto e = node(K::Slice, t);
    e->args.push_back(std::move(obj));
    e->args.push_back(std::move(first));
    e->args.push_back(is_op(":") || is_op("]") ? nullptr : parse_expression(true));
    ExprPtr step;
    if (skip_op(":") && !is_op("]")) step = parse_expression(true);
    e->args.push_back(std::move(step));
    expect_op("]");
    return done(std::move(e));
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(K::Call, cur());
    e->args.push_back(std::move(callee));
    parse_call_args(e.get());
    return done(std::move(e));
  }

  void parse_call_args(Expr* e) {
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (cur().kind == TK::Name && peek().kind == TK::Op && peek().value == "=") {
        std::string key = next().value;
        next();
        e->kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e->kwargs.empty()) fail("positional argument follows keyword argument");
        e->args.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    next();
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (is_op(".")) {
      next();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr subject, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const Token& at = cur();
      auto e = node(K::Filter, at);
      e->name = dotted_name();
      if (!is_known_filter(e->name)) fail_at(at, "no filter named '" + e->name + "'");
      e->args.push_back(std::move(subject));
      if (is_op("(")) parse_call_args(e.get());
      subject = done(std::move(e));
    }
    return subject;
  }

  ExprPtr parse_test(ExprPtr subject) {
    const Token& is_tok = next();
    const bool negated = skip_name("not");
    const Token& at = cur();
    auto e = node(K::Test, at);
    e->name = dotted_name();
    if (!is_known_test(e->name)) fail_at(at, "no test named '" + e->name + "'");
    e->args.push_back(std::move(subject));
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(e.get());
    } else if ((t.kind == TK::Name || t.kind == TK::String || t.kind == TK::Int ||
                t.kind == TK::Float || is_op("[") || is_op("{")) &&
               !(t.kind == TK::Name &&
                 (t.value == "else" || t.value == "or" || t.value == "and"))) {
      if (is_name("is")) fail("you cannot chain multiple tests with 'is'");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    ExprPtr test = done(std::move(e));
    if (!negated) return test;
    auto n = node(K::Unary, is_tok);
    n->name = "not";
    n->args.push_back(std::move(test));
    return done(std::move(n));
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(const std::string& source) {
  return Parser(lex(source)).run();
}

}  // namespace dspark::jinja
