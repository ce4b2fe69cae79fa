#include "jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "dspark/text.h"
#include "jinja_text.h"

namespace dspark::jinja {
namespace {

// Recursion guard for printing and comparing: namespaces can be made to contain themselves.
void check_depth(int depth) {
  if (depth > kMaxValueDepth) throw TemplateError("value nests too deeply (or contains itself)");
}

// `content` (may be null) is set when a marked string is printed.
void repr_into(const Value& v, std::string* out, int depth, bool* content);

void repr_items(const std::vector<Value>& items, std::string* out, int depth, bool* content) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) *out += ", ";
    repr_into(items[i], out, depth + 1, content);
  }
}

void repr_into(const Value& v, std::string* out, int depth, bool* content) {
  check_depth(depth);
  switch (v.type()) {
    case Value::Type::Undefined:
      *out += "Undefined";
      return;
    case Value::Type::String:
      *out += py_repr_string(v.str());
      if (content && v.is_content()) *content = true;
      return;
    case Value::Type::List: {
      const List& l = v.list();
      if (l.generator) {
        *out += "<generator object>";
        return;
      }
      *out += l.tuple ? '(' : '[';
      repr_items(l.items, out, depth, content);
      if (l.tuple && l.items.size() == 1) *out += ',';
      *out += l.tuple ? ')' : ']';
      return;
    }
    case Value::Type::Dict: {
      *out += '{';
      bool first = true;
      for (const auto& [k, val] : v.dict().items) {
        if (!first) *out += ", ";
        first = false;
        repr_into(k, out, depth + 1, content);
        *out += ": ";
        repr_into(val, out, depth + 1, content);
      }
      *out += '}';
      return;
    }
    case Value::Type::Namespace: {
      const Namespace& n = *v.ns();
      if (n.is_loop) {
        const Value* index = n.find("index");
        const Value* length = n.find("length");
        *out += "<LoopContext " + (index ? to_str(*index) : "") + "/" +
                (length ? to_str(*length) : "") + ">";
        return;
      }
      // Attribute names may have come from the data (namespace(some_dict)) and are plain
      // std::strings here: a printed namespace counts as content.
      if (content) *content = true;
      *out += "<Namespace {";
      bool first = true;
      for (const auto& [k, val] : n.attrs) {
        if (!first) *out += ", ";
        first = false;
        *out += py_repr_string(k) + ": ";
        repr_into(val, out, depth + 1, content);
      }
      *out += "}>";
      return;
    }
    default:
      *out += to_str(v);
  }
}

void json_string(std::string_view s, bool ensure_ascii, std::string* out) {
  static const char* hex = "0123456789abcdef";
  auto u_escape = [&](uint32_t c) {
    *out += "\\u";
    for (int i = 3; i >= 0; --i) *out += hex[(c >> (4 * i)) & 15];
  };
  *out += '"';
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const char32_t c = utf8_next(s, &pos);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c < 0x20) {
          u_escape(c);
        } else if (ensure_ascii && c >= 0x80) {
          if (c >= 0x10000) {
            const uint32_t v = c - 0x10000;
            u_escape(0xD800 + (v >> 10));
            u_escape(0xDC00 + (v & 0x3FF));
          } else {
            u_escape(c);
          }
        } else {
          out->append(s.substr(start, pos - start));
        }
    }
  }
  *out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

// Dict keys as json.dumps converts them: str as is, numbers/bools/None to their JSON text.
std::string json_key(const Value& k, bool* content) {
  switch (k.type()) {
    case Value::Type::String:
      if (content && k.is_content()) *content = true;
      return k.str();
    case Value::Type::Int:
      return std::to_string(k.as_int());
    case Value::Type::Float:
      return json_float(k.as_float());
    case Value::Type::Bool:
      return k.as_bool() ? "true" : "false";
    case Value::Type::None:
      return "null";
    default:
      throw TemplateError("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void json_into(const Value& v, const JsonStyle& st, int depth, std::string* out, bool* content) {
  check_depth(depth);
  auto newline = [&](int level) {
    *out += '\n';
    for (int i = 0; i < level; ++i) *out += st.indent;
  };
  const std::string& item_sep = st.item_sep;
  switch (v.type()) {
    case Value::Type::None:
      *out += "null";
      return;
    case Value::Type::Bool:
      *out += v.as_bool() ? "true" : "false";
      return;
    case Value::Type::Int:
      *out += std::to_string(v.as_int());
      return;
    case Value::Type::Float:
      *out += json_float(v.as_float());
      return;
    case Value::Type::String:
      json_string(v.str(), st.ensure_ascii, out);
      if (content && v.is_content()) *content = true;
      return;
    case Value::Type::List: {
      if (v.list().generator)
        throw TemplateError("Object of type generator is not JSON serializable");
      const auto& items = v.list().items;
      if (items.empty()) {
        *out += "[]";
        return;
      }
      *out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) *out += item_sep;
        if (st.has_indent) newline(depth + 1);
        json_into(items[i], st, depth + 1, out, content);
      }
      if (st.has_indent) newline(depth);
      *out += ']';
      return;
    }
    case Value::Type::Dict: {
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& [k, val] : v.dict().items) items.emplace_back(json_key(k, content), &val);
      if (items.empty()) {
        *out += "{}";
        return;
      }
      if (st.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      *out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) *out += item_sep;
        if (st.has_indent) newline(depth + 1);
        json_string(items[i].first, st.ensure_ascii, out);
        *out += st.key_sep;
        json_into(*items[i].second, st, depth + 1, out, content);
      }
      if (st.has_indent) newline(depth);
      *out += '}';
      return;
    }
    default:
      throw TemplateError("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

int64_t Value::as_int() const {
  if (is(Type::Bool)) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double Value::as_float() const {
  if (is(Type::Float)) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

const void* Value::identity() const {
  switch (type()) {
    case Type::List:
      return std::get<ListPtr>(v_).get();
    case Type::Dict:
      return std::get<DictPtr>(v_).get();
    case Type::Namespace:
      return std::get<NamespacePtr>(v_).get();
    case Type::Callable:
      return std::get<CallablePtr>(v_).get();
    default:
      return nullptr;
  }
}

int Value::depth() const {
  switch (type()) {
    case Type::List:
      return list().depth;
    case Type::Dict:
      return dict().depth;
    case Type::Namespace:
      return ns()->depth;
    default:
      return 0;
  }
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.is_string() && k.str() == key) return &v;
  return nullptr;
}

const Value* Namespace::find(std::string_view name) const {
  for (const auto& [k, v] : attrs)
    if (k == name) return &v;
  return nullptr;
}

void Namespace::set(const std::string& name, Value v) {
  depth = std::max(depth, v.depth() + 1);
  if (depth > kMaxValueDepth) throw TemplateError("value nests too deeply");
  for (auto& [k, old] : attrs) {
    if (k == name) {
      old = std::move(v);
      return;
    }
  }
  attrs.emplace_back(name, std::move(v));
}

Value make_list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<List>();
  for (const auto& v : items) l->depth = std::max(l->depth, v.depth() + 1);
  if (l->depth > kMaxValueDepth) throw TemplateError("list nests too deeply");
  l->items = std::move(items);
  l->tuple = tuple;
  return Value::list(std::move(l));
}

Value make_generator(std::vector<Value> items) {
  auto l = std::make_shared<List>();
  for (const auto& v : items) l->depth = std::max(l->depth, v.depth() + 1);
  if (l->depth > kMaxValueDepth) throw TemplateError("list nests too deeply");
  l->items = std::move(items);
  l->generator = true;
  return Value::list(std::move(l));
}

bool is_generator(const Value& v) {
  return v.is(Value::Type::List) && v.list().generator;
}

Value make_dict(std::vector<std::pair<Value, Value>> items) {
  auto d = std::make_shared<Dict>();
  for (const auto& [k, v] : items) d->depth = std::max({d->depth, k.depth() + 1, v.depth() + 1});
  if (d->depth > kMaxValueDepth) throw TemplateError("dict nests too deeply");
  // Later duplicates overwrite earlier keys in place, as in a Python dict display.
  for (auto& [k, v] : items) {
    bool replaced = false;
    for (auto& [ek, ev] : d->items) {
      if (equals(ek, k)) {
        ev = std::move(v);
        replaced = true;
        break;
      }
    }
    if (!replaced) d->items.emplace_back(std::move(k), std::move(v));
  }
  return Value::dict(std::move(d));
}

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
    case Value::Type::None:
      return false;
    case Value::Type::Bool:
      return v.as_bool();
    case Value::Type::Int:
      return v.as_int() != 0;
    case Value::Type::Float:
      return v.as_float() != 0.0;
    case Value::Type::String:
      return !v.str().empty();
    case Value::Type::List:
      return v.list().generator || !v.list().items.empty();
    case Value::Type::Dict:
      return !v.dict().items.empty();
    default:
      return true;
  }
}

std::string type_name(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return "Undefined";
    case Value::Type::None:
      return "NoneType";
    case Value::Type::Bool:
      return "bool";
    case Value::Type::Int:
      return "int";
    case Value::Type::Float:
      return "float";
    case Value::Type::String:
      return "str";
    case Value::Type::List:
      return v.list().generator ? "generator" : v.list().tuple ? "tuple" : "list";
    case Value::Type::Dict:
      return "dict";
    case Value::Type::Namespace:
      return v.ns()->is_loop ? "LoopContext" : "Namespace";
    case Value::Type::Callable:
      return "function";
  }
  return "object";
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  // sci looks like "-1.2345e+02": split into sign, significant digits and exponent.
  size_t i = 0;
  std::string sign;
  if (sci[i] == '-') {
    sign = "-";
    ++i;
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t j = i; j < e_pos; ++j)
    if (sci[j] != '.') digits += sci[j];
  const int exp = std::stoi(sci.substr(e_pos + 1));
  const int decpt = exp + 1;  // value = 0.<digits> * 10^decpt
  const int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return sign + "0." + std::string(-decpt, '0') + digits;
    if (decpt >= n) return sign + digits + std::string(decpt - n, '0') + ".0";
    return sign + digits.substr(0, decpt) + "." + digits.substr(decpt);
  }
  std::string out = sign + digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  const int e = decpt - 1;
  std::string e_digits = std::to_string(e < 0 ? -e : e);
  if (e_digits.size() < 2) e_digits = "0" + e_digits;
  return out + "e" + (e < 0 ? "-" : "+") + e_digits;
}

std::string to_str(const Value& v, bool* content) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return "";
    case Value::Type::None:
      return "None";
    case Value::Type::Bool:
      return v.as_bool() ? "True" : "False";
    case Value::Type::Int:
      return std::to_string(v.as_int());
    case Value::Type::Float:
      return float_repr(v.as_float());
    case Value::Type::String:
      if (content && v.is_content()) *content = true;
      return v.str();
    case Value::Type::Callable:
      return "<function " + v.callable().name + ">";
    default:
      return repr(v, content);
  }
}

std::string repr(const Value& v, bool* content) {
  std::string out;
  repr_into(v, &out, 0, content);
  return out;
}

Value to_text(const Value& v) {
  if (v.is_string()) return v;
  bool content = false;
  std::string s = to_str(v, &content);
  const size_t n = s.size();
  return content ? Value::string(std::move(s), Marks::whole(n)) : Value::string(std::move(s));
}

std::optional<Value> char_at(const Value& s, int64_t index) {
  const auto cps = code_points(s.str());
  const auto n = static_cast<int64_t>(cps.size());
  if (index < 0) index += n;
  if (index < 0 || index >= n) return std::nullopt;
  return Value::text(text_from_cps(cps, cp_marks(s.str(), s.marks()), {size_t(index)}));
}

Value byte_slice(const Value& s, size_t begin, size_t end) {
  end = std::min(end, s.str().size());
  begin = std::min(begin, end);
  return Value::string(s.str().substr(begin, end - begin), s.marks().slice(begin, end));
}

Value derived(std::string s, std::initializer_list<const Value*> inputs) {
  bool content = false;
  for (const Value* v : inputs) content = content || (v && v->is_content());
  const size_t n = s.size();
  return content ? Value::string(std::move(s), Marks::whole(n)) : Value::string(std::move(s));
}

std::string to_json(const Value& v, const JsonStyle& style, bool* content) {
  std::string out;
  json_into(v, style, 0, &out, content);
  return out;
}

namespace {

bool equals_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::Undefined:
    case Value::Type::None:
      return true;
    case Value::Type::String:
      return a.str() == b.str();
    case Value::Type::List: {
      const List &x = a.list(), &y = b.list();
      if (x.generator || y.generator) return &x == &y;
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals_at(x.items[i], y.items[i], depth + 1)) return false;
      return true;
    }
    case Value::Type::Dict: {
      const Dict &x = a.dict(), &y = b.dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (!other || !equals_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

int compare_at(const Value& a, const Value& b, std::string_view op, int depth) {
  check_depth(depth);
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral())
      return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    const double x = a.as_float(), y = b.as_float();
    if (std::isnan(x) || std::isnan(y)) return 2;  // unordered: every comparison is false
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    // UTF-8 byte order equals code point order.
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is(Value::Type::List) && b.is(Value::Type::List) && a.list().tuple == b.list().tuple &&
      !a.list().generator && !b.list().generator) {
    const auto &x = a.list().items, &y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals_at(x[i], y[i], depth + 1)) continue;
      return compare_at(x[i], y[i], op, depth + 1);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw TemplateError("'" + std::string(op) + "' not supported between instances of '" +
                      type_name(a) + "' and '" + type_name(b) + "'");
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  return equals_at(a, b, 0);
}

int compare(const Value& a, const Value& b, std::string_view op) {
  return compare_at(a, b, op, 0);
}

void throw_undefined(const Value& v) {
  const std::string& hint = v.undefined_hint();
  throw TemplateError(hint.empty() ? "undefined value used" : hint);
}

}  // namespace dspark::jinja
