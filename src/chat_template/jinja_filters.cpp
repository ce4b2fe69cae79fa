// Jinja filters and tests (jinja2's defaults that chat templates use; HF's tojson).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "dspark/text.h"
#include "jinja_builtins.h"
#include "jinja_eval.h"
#include "jinja_text.h"

namespace dspark::jinja {
namespace {

const std::vector<std::string_view> kFilters = {
    "abs",     "attr",    "capitalize", "count",  "d",      "default",    "dictsort", "e",
    "escape",  "first",   "float",      "indent", "int",    "items",      "join",     "last",
    "length",  "list",    "lower",      "map",    "max",    "min",        "reject",   "rejectattr",
    "replace", "reverse", "round",      "safe",   "select", "selectattr", "sort",     "string",
    "sum",     "title",   "tojson",     "trim",   "unique", "upper"};
const std::vector<std::string_view> kTests = {
    "boolean", "callable", "defined",  "divisibleby", "eq",       "equalto", "escaped",
    "even",    "false",    "filter",   "float",       "ge",       "gt",      "greaterthan",
    "in",      "integer",  "iterable", "le",          "lessthan", "lower",   "lt",
    "mapping", "ne",       "none",     "number",      "odd",      "sameas",  "sequence",
    "string",  "test",     "true",     "undefined",   "upper"};

bool known(const std::vector<std::string_view>& names, std::string_view n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

int64_t length_of(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return 0;
    case Value::Type::String:
      return static_cast<int64_t>(cp_length(v.str()));
    case Value::Type::List:
      if (v.list().generator) throw TemplateError("object of type 'generator' has no len()");
      return static_cast<int64_t>(v.list().items.size());
    case Value::Type::Dict:
      return static_cast<int64_t>(v.dict().items.size());
    default:
      throw TemplateError("object of type '" + type_name(v) + "' has no len()");
  }
}

// Python int(str): optional sign, digits with single underscores, surrounding whitespace.
std::optional<int64_t> parse_int(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, StripSide::Both);
  std::string digits;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) digits += s[i++];
  if (i == s.size()) return std::nullopt;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
        i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))
      continue;
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    digits += s[i];
  }
  const char* b = digits.c_str() + (digits[0] == '+' ? 1 : 0);
  int64_t v = 0;
  const auto r = std::from_chars(b, digits.c_str() + digits.size(), v);
  if (r.ec != std::errc() || r.ptr != digits.c_str() + digits.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_float(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, StripSide::Both);
  if (s.empty()) return std::nullopt;
  const char* b = s.c_str() + (s[0] == '+' ? 1 : 0);
  double v = 0;
  const auto r = std::from_chars(b, s.c_str() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.c_str() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> to_float(const Value& v) {
  if (v.is_number()) return v.as_float();
  if (v.is_string()) return parse_float(v.str());
  return std::nullopt;
}

// The attribute path of map/selectattr/sort(attribute=...): "a.b.0" looks up a, b, then item 0.
Value attr_path(Interpreter& in, const Value& obj, const Value& path) {
  if (!path.is_string()) return in.getitem(obj, path);
  Value cur = obj;
  for (const auto& part : py_split(path.str(), std::string("."), -1, false)) {
    const auto idx = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)
                         ? parse_int(part)
                         : std::nullopt;
    cur = in.getitem(cur, idx ? Value::integer(*idx) : Value::string(part));
  }
  return cur;
}

Value fold_case(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value::string(py_lower(v.str())) : v;
}

std::vector<Value> sorted(std::vector<Value> items, const std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? compare(keys[b], keys[a], "<") < 0 : compare(keys[a], keys[b], "<") < 0;
  });
  std::vector<Value> out;
  for (size_t i : order) out.push_back(std::move(items[i]));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string title_filter(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char32_t c : code_points(s)) {
    const bool sep = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    std::string one;
    utf8_append(c, &one);
    if (sep) {
      out += one;
      word_start = true;
    } else {
      out += word_start ? py_upper(one) : py_lower(one);
      word_start = false;
    }
  }
  return out;
}

double py_round(double x, int64_t digits) {
  if (!std::isfinite(x) || digits > 300) return x;
  if (digits < -308) return std::copysign(0.0, x);
  if (digits >= 0 && digits <= 300) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(digits), x);
    return std::strtod(buf, nullptr);
  }
  const double scale = std::pow(10.0, static_cast<double>(-digits));
  return std::nearbyint(x / scale) * scale;
}

// Python's round(int, digits): ints stay ints; negative digits round half to even.
int64_t round_int(int64_t x, int64_t digits) {
  if (digits >= 0) return x;
  if (digits < -18) return 0;
  int64_t p = 1;
  for (int64_t i = 0; i < -digits; ++i) p *= 10;
  int64_t q = x / p, r = x % p;
  if (r < 0) {
    --q;
    r += p;
  }
  if (2 * r > p || (2 * r == p && (q % 2 != 0))) ++q;
  int64_t out = 0;
  if (__builtin_mul_overflow(q, p, &out)) throw TemplateError("integer overflow");
  return out;
}

// select/reject and selectattr/rejectattr: the test named by args[first] (truthiness when
// absent) applied to each item (or its attribute).
Value select_items(Interpreter& in, const Value& seq, CallArgs& a, bool by_attr, bool keep) {
  if (!truthy(seq)) return make_generator({});  // jinja2 yields nothing for a falsy value
  size_t first = 0;
  Value attr;
  if (by_attr) {
    if (a.args.empty()) throw TemplateError("Missing parameter for attribute name");
    attr = a.args[0];
    first = 1;
  }
  std::string test;
  CallArgs test_args;
  if (a.args.size() > first) {
    if (!a.args[first].is_string()) throw TemplateError("test name must be a string");
    test = a.args[first].str();
    if (!is_known_test(test)) throw TemplateError("No test named '" + test + "'.");
    test_args.args.assign(a.args.begin() + static_cast<long>(first) + 1, a.args.end());
  }
  test_args.kwargs = a.kwargs;
  std::vector<Value> out;
  for (const auto& item : iterate(seq)) {
    const Value subject = by_attr ? attr_path(in, item, attr) : item;
    CallArgs call = test_args;
    const bool hit = test.empty() ? truthy(subject) : apply_test(in, test, subject, call);
    if (hit == keep) out.push_back(item);
  }
  return make_generator(std::move(out));
}

Value tojson(const Value& v, CallArgs& a) {
  // Hugging Face's tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
  Params p("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle st;
  st.ensure_ascii = p.has(0) && truthy(p[0]);
  st.sort_keys = p.has(3) && truthy(p[3]);
  if (p.has(1) && !p[1].is_none()) {
    st.has_indent = true;
    if (p[1].is_string())
      st.indent = p[1].str();
    else if (p[1].is_integral())
      st.indent.assign(static_cast<size_t>(std::clamp<int64_t>(p[1].as_int(), 0, 64)), ' ');
    else
      throw TemplateError("tojson indent must be an int or a string");
  }
  if (p.has(2) && !p[2].is_none()) {
    if (!p[2].is(Value::Type::List) || p[2].list().items.size() != 2 ||
        !p[2].list().items[0].is_string() || !p[2].list().items[1].is_string())
      throw TemplateError("tojson separators must be a pair of strings");
    st.item_sep = p[2].list().items[0].str();
    st.key_sep = p[2].list().items[1].str();
  } else if (st.has_indent) {
    st.item_sep = ",";
  }
  bool content = false;
  std::string out = to_json(v, st, &content);
  const size_t n = out.size();
  return content ? Value::string(std::move(out), Marks::whole(n)) : Value::string(std::move(out));
}

Value min_max(Interpreter& in, const Value& seq, CallArgs& a, bool want_max) {
  Params p(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  const bool cs = p.has(0) && truthy(p[0]);
  const std::vector<Value> items = iterate(seq);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const Value* best = &items[0];
  Value best_key = fold_case(p.has(1) ? attr_path(in, items[0], p[1]) : items[0], cs);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = fold_case(p.has(1) ? attr_path(in, items[i], p[1]) : items[i], cs);
    const int c = compare(key, best_key, want_max ? ">" : "<");
    if (want_max ? c == 1 : c == -1) {
      best = &items[i];
      best_key = std::move(key);
    }
  }
  return *best;
}

Value indent(const Value& v, CallArgs& a) {
  Params p("indent", a, {"width", "first", "blank"});
  if (!v.is_string()) throw TemplateError("indent expects a string, not " + type_name(v));
  // Lines are re-cut and padded: the result is marked whole when v or the padding is.
  const Value* pad_value = p.has(0) ? &p[0] : nullptr;
  std::string pad = "    ";
  if (p.has(0))
    pad = p[0].is_string()
              ? p[0].str()
              : std::string(static_cast<size_t>(std::clamp<int64_t>(p[0].as_int(), 0, 256)), ' ');
  const std::vector<std::string> lines = py_splitlines(to_str(v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n";
    const bool pad_it = i > 0 && ((p.has(2) && truthy(p[2])) || !lines[i].empty());
    out += (pad_it ? pad : "") + lines[i];
  }
  if (p.has(1) && truthy(p[1])) out = pad + out;
  return derived(std::move(out), {&v, pad_value});
}

}  // namespace

bool is_known_filter(std::string_view name) {
  return known(kFilters, name);
}
bool is_known_test(std::string_view name) {
  return known(kTests, name);
}

Value apply_filter(Interpreter& in, const std::string& name, Value v, CallArgs& a) {
  if (name == "tojson") return tojson(v, a);
  if (name == "default" || name == "d") {
    Params p(name, a, {"default_value", "boolean"});
    const bool use_default = v.is_undefined() || (p.has(1) && truthy(p[1]) && !truthy(v));
    return use_default ? p.get(0, Value::string("")) : v;
  }
  if (name == "length" || name == "count") {
    Params p(name, a, {});
    return Value::integer(length_of(v));
  }
  if (name == "string" || name == "safe") {
    Params p(name, a, {});
    return to_text(v);
  }
  if (name == "e" || name == "escape") {
    Params p(name, a, {});
    const Value t = to_text(v);
    return derived(html_escape(t.str()), {&t});
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    Params p(name, a, {});
    const Value t = to_text(v);
    const std::string& s = t.str();
    if (name == "upper") return derived(py_upper(s), {&t});
    if (name == "lower") return derived(py_lower(s), {&t});
    if (name == "capitalize") return derived(py_capitalize(s), {&t});
    return derived(title_filter(s), {&t});
  }
  if (name == "trim") {
    Params p(name, a, {"chars"});
    std::optional<std::string> chars;
    if (p.has(0) && !p[0].is_none()) chars = to_str(p[0]);
    return strip_text(to_text(v), chars, StripSide::Both);
  }
  if (name == "replace") {
    Params p(name, a, {"old", "new", "count"});
    if (!p.has(1)) throw TemplateError("replace() needs the old and new strings");
    const int64_t count = p.has(2) && !p[2].is_none() && p[2].is_integral() ? p[2].as_int() : -1;
    return replace_text(in, to_text(v), to_text(p[0]), to_text(p[1]), count);
  }
  if (name == "first" || name == "last") {
    Params p(name, a, {});
    if (v.is_string()) {
      if (auto c = char_at(v, name == "first" ? 0 : -1)) return *c;
    } else if (!v.is_undefined()) {
      if (name == "last" && is_generator(v))
        throw TemplateError("'generator' object is not reversible");
      const std::vector<Value> items = iterate(v);
      if (!items.empty()) return name == "first" ? items.front() : items.back();
    }
    return Value::undefined("No " + name + " item, sequence was empty.");
  }
  if (name == "join") {
    Params p(name, a, {"d", "attribute"});
    const Value sep = p.has(0) ? to_text(p[0]) : Value::string("");
    std::vector<Value> pieces;
    for (const auto& item : iterate(v)) {
      pieces.push_back(to_text(p.has(1) ? attr_path(in, item, p[1]) : item));
      in.check_size(pieces.back().str().size());
    }
    return join_text(in, sep, pieces);
  }
  if (name == "list") {
    Params p(name, a, {});
    return make_list(iterate(v));
  }
  if (name == "items") {
    Params p(name, a, {});
    if (v.is_undefined()) return make_generator({});
    if (!v.is(Value::Type::Dict)) throw TemplateError("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, val] : v.dict().items) out.push_back(make_list({k, val}, true));
    return make_generator(std::move(out));
  }
  if (name == "dictsort") {
    Params p(name, a, {"case_sensitive", "by", "reverse"});
    if (!v.is(Value::Type::Dict)) throw TemplateError("dictsort expects a mapping");
    const bool by_value = p.has(1) && p[1].is_string() && p[1].str() == "value";
    std::vector<Value> items, keys;
    for (const auto& [k, val] : v.dict().items) {
      items.push_back(make_list({k, val}, true));
      keys.push_back(fold_case(by_value ? val : k, p.has(0) && truthy(p[0])));
    }
    return make_list(sorted(std::move(items), keys, p.has(2) && truthy(p[2])));
  }
  if (name == "sort") {
    Params p(name, a, {"reverse", "case_sensitive", "attribute"});
    std::vector<Value> items = iterate(v), keys;
    for (const auto& item : items)
      keys.push_back(
          fold_case(p.has(2) ? attr_path(in, item, p[2]) : item, p.has(1) && truthy(p[1])));
    return make_list(sorted(std::move(items), keys, p.has(0) && truthy(p[0])));
  }
  if (name == "unique") {
    Params p(name, a, {"case_sensitive", "attribute"});
    std::vector<Value> out, seen;
    for (const auto& item : iterate(v)) {
      Value key = fold_case(p.has(1) ? attr_path(in, item, p[1]) : item, p.has(0) && truthy(p[0]));
      if ((key.is(Value::Type::List) && !key.list().tuple) || key.is(Value::Type::Dict))
        throw TemplateError("unhashable type: '" + type_name(key) + "'");
      bool dup = false;
      for (const auto& s : seen) dup = dup || equals(s, key);
      if (dup) continue;
      seen.push_back(std::move(key));
      out.push_back(item);
    }
    return make_generator(std::move(out));
  }
  if (name == "reverse") {
    Params p(name, a, {});
    if (v.is_string()) {
      const auto cps = code_points(v.str());
      std::vector<size_t> picks(cps.size());
      for (size_t i = 0; i < picks.size(); ++i) picks[i] = picks.size() - 1 - i;
      return Value::text(text_from_cps(cps, cp_marks(v.str(), v.marks()), picks));
    }
    // reversed() of a list is an iterator; of anything else jinja2 builds a list.
    const bool lazy = v.is(Value::Type::List) && !is_generator(v);
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return lazy ? make_generator(std::move(items)) : make_list(std::move(items));
  }
  if (name == "map") {
    if (!truthy(v)) return make_generator({});  // jinja2 yields nothing for a falsy value
    std::vector<Value> out;
    const Value* attribute = nullptr;
    const Value* fallback = nullptr;
    for (const auto& [k, val] : a.kwargs) {
      if (k == "attribute") attribute = &val;
      if (k == "default") fallback = &val;
    }
    if (attribute) {
      for (const auto& item : iterate(v)) {
        Value x = attr_path(in, item, *attribute);
        out.push_back(x.is_undefined() && fallback ? *fallback : x);
      }
      return make_generator(std::move(out));
    }
    if (a.args.empty() || !a.args[0].is_string()) throw TemplateError("map needs a filter name");
    const std::string filter = a.args[0].str();
    if (!is_known_filter(filter) || filter == "map")
      throw TemplateError("No filter named '" + filter + "'.");
    for (const auto& item : iterate(v)) {
      CallArgs rest;
      rest.args.assign(a.args.begin() + 1, a.args.end());
      rest.kwargs = a.kwargs;
      in.charge(1);
      out.push_back(apply_filter(in, filter, item, rest));
    }
    return make_generator(std::move(out));
  }
  if (name == "select" || name == "reject") return select_items(in, v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr")
    return select_items(in, v, a, true, name == "selectattr");
  if (name == "attr") {
    Params p(name, a, {"name"});
    if (!p.has(0) || !p[0].is_string()) throw TemplateError("attr() needs an attribute name");
    return in.getattr(v, p[0].str());
  }
  if (name == "max" || name == "min") return min_max(in, v, a, name == "max");
  if (name == "sum") {
    Params p(name, a, {"attribute", "start"});
    Value total = p.get(1, Value::integer(0));
    for (const auto& item : iterate(v)) {
      const Value x = p.has(0) ? attr_path(in, item, p[0]) : item;
      if (!total.is_number() || !x.is_number())
        throw TemplateError("unsupported operand type(s) for +: '" + type_name(total) + "' and '" +
                            type_name(x) + "'");
      total = total.is_integral() && x.is_integral()
                  ? Value::integer(total.as_int() + x.as_int())
                  : Value::number(total.as_float() + x.as_float());
    }
    return total;
  }
  if (name == "abs") {
    Params p(name, a, {});
    if (v.is(Value::Type::Float)) return Value::number(std::fabs(v.as_float()));
    if (v.is_integral()) {
      if (v.as_int() == std::numeric_limits<int64_t>::min())
        throw TemplateError("integer overflow");
      return Value::integer(std::llabs(v.as_int()));
    }
    throw TemplateError("bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (name == "int") {
    Params p(name, a, {"default", "base"});
    const Value fallback = p.get(0, Value::integer(0));
    if (v.is_undefined()) throw_undefined(v);
    if (v.is_integral()) return Value::integer(v.as_int());
    std::optional<double> f;
    if (v.is_string()) {
      if (auto i = parse_int(v.str())) return Value::integer(*i);
      f = parse_float(v.str());
    } else if (v.is(Value::Type::Float)) {
      f = v.as_float();
    }
    if (!f) return fallback;
    if (!std::isfinite(*f) || std::fabs(*f) >= 9.2e18)
      throw TemplateError("cannot convert float " + float_repr(*f) + " to integer");
    return Value::integer(static_cast<int64_t>(std::trunc(*f)));
  }
  if (name == "float") {
    Params p(name, a, {"default"});
    if (v.is_undefined()) throw_undefined(v);
    const auto f = to_float(v);
    return f ? Value::number(*f) : p.get(0, Value::number(0.0));
  }
  if (name == "round") {
    Params p(name, a, {"precision", "method"});
    const int64_t digits = p.has(0) && p[0].is_integral() ? p[0].as_int() : 0;
    const std::string method = p.has(1) ? to_str(p[1]) : "common";
    if (!v.is_number()) throw TemplateError("round() needs a number, not " + type_name(v));
    const double x = v.as_float();
    if (method == "common" && v.is_integral()) return Value::integer(round_int(v.as_int(), digits));
    if (method == "common") return Value::number(py_round(x, digits));
    if (method != "ceil" && method != "floor")
      throw TemplateError("method must be common, ceil or floor");
    const double scale =
        std::pow(10.0, static_cast<double>(std::clamp<int64_t>(digits, -300, 300)));
    const double r = method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale);
    return Value::number(r / scale);
  }
  if (name == "indent") return indent(v, a);
  throw TemplateError("no filter named '" + name + "'");
}

bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& a) {
  using T = Value::Type;
  in.charge(1);
  const Value arg = a.args.empty() ? Value() : a.args[0];
  static const std::vector<std::string_view> kUnary = {
      "defined", "undefined", "none",   "boolean", "true",     "false",    "integer",
      "float",   "number",    "string", "mapping", "iterable", "sequence", "callable",
      "escaped", "lower",     "upper",  "odd",     "even",     "filter",   "test"};
  if (known(kUnary, name) && a.args.size() + a.kwargs.size() > 0)
    throw TemplateError("test '" + name + "' takes no arguments");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is(T::Bool);
  if (name == "true") return v.is(T::Bool) && v.as_bool();
  if (name == "false") return v.is(T::Bool) && !v.as_bool();
  if (name == "integer") return v.is(T::Int);
  if (name == "float") return v.is(T::Float);
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is(T::Dict);
  if (name == "iterable" || name == "sequence")
    return (v.is(T::List) && !(name == "sequence" && is_generator(v))) || v.is(T::Dict) ||
           v.is_string() || v.is_undefined();
  if (name == "callable") return v.is(T::Callable);
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") return py_is(to_str(v), name);
  if (name == "filter") return v.is_string() && is_known_filter(v.str());
  if (name == "test") return v.is_string() && is_known_test(v.str());
  if (name == "odd" || name == "even" || name == "divisibleby") {
    // jinja2 tests these with Python's %, so floats and bools work too.
    const Value n = name == "divisibleby" ? arg : Value::integer(2);
    if (!v.is_number() || !n.is_number())
      throw TemplateError("unsupported operand type(s) for %: '" + type_name(v) + "' and '" +
                          type_name(n) + "'");
    if (n.as_float() == 0.0) throw TemplateError("modulo by zero");
    double r;
    if (v.is_integral() && n.is_integral()) {
      if (n.as_int() == -1) return name != "odd";
      int64_t m = v.as_int() % n.as_int();
      if (m != 0 && ((m < 0) != (n.as_int() < 0))) m += n.as_int();
      r = static_cast<double>(m);
    } else {
      r = std::fmod(v.as_float(), n.as_float());
      if (r != 0.0 && ((r < 0) != (n.as_float() < 0))) r += n.as_float();
    }
    return name == "odd" ? r == 1.0 : r == 0.0;
  }
  if (a.args.empty() && a.kwargs.empty())
    throw TemplateError("test '" + name + "' takes one argument");
  if (name == "eq" || name == "equalto") return equals(v, arg);
  if (name == "ne") return !equals(v, arg);
  if (name == "in") return contains(arg, v);
  if (name == "sameas") {
    if (v.identity() || arg.identity()) return v.identity() == arg.identity();
    return v.type() == arg.type() && (v.is_none() || v.is_undefined() || equals(v, arg));
  }
  const int c = compare(v, arg, name);
  if (c == 2) return false;
  if (name == "lt" || name == "lessthan") return c < 0;
  if (name == "le") return c <= 0;
  if (name == "gt" || name == "greaterthan") return c > 0;
  return c >= 0;
}

}  // namespace dspark::jinja
