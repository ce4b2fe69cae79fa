// str/dict/list methods, template globals and "in" for the Jinja interpreter.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "jinja_builtins.h"
#include "jinja_eval.h"
#include "jinja_text.h"

namespace dspark::jinja {
namespace {

const std::vector<std::string_view> kStrMethods = {
    "startswith", "endswith", "split",   "rsplit",       "strip",       "lstrip",  "rstrip",
    "upper",      "lower",    "title",   "capitalize",   "replace",     "find",    "rfind",
    "index",      "count",    "join",    "splitlines",   "isdigit",     "isalpha", "isalnum",
    "isspace",    "isupper",  "islower", "removeprefix", "removesuffix"};
const std::vector<std::string_view> kDictMethods = {"get", "items", "keys", "values"};
const std::vector<std::string_view> kListMethods = {"index", "count"};
const std::vector<std::string_view> kMutatingList = {"append", "extend",  "insert", "pop",
                                                     "remove", "reverse", "sort",   "clear"};
const std::vector<std::string_view> kMutatingDict = {"pop", "popitem", "setdefault", "update",
                                                     "clear"};

bool in(const std::vector<std::string_view>& names, std::string_view n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

const std::string& need_str(const Value& v, const std::string& fn) {
  if (!v.is_string()) throw TemplateError(fn + "() argument must be str, not " + type_name(v));
  return v.str();
}

std::optional<std::string> opt_str(const Params& p, size_t i, const std::string& fn) {
  if (!p.has(i) || p[i].is_none()) return std::nullopt;
  return need_str(p[i], fn);
}

int64_t opt_int(const Params& p, size_t i, int64_t fallback) {
  if (!p.has(i) || p[i].is_none()) return fallback;
  if (!p[i].is_integral()) throw TemplateError("an integer is required, got " + type_name(p[i]));
  return p[i].as_int();
}

// Python's str.find result as a code point index.
int64_t cp_index(const std::string& s, size_t byte_pos) {
  if (byte_pos == std::string::npos) return -1;
  return static_cast<int64_t>(cp_length(std::string_view(s).substr(0, byte_pos)));
}

bool affix_match(const Value& affix, const std::string& s, bool prefix, const std::string& fn) {
  auto one = [&](const Value& a) {
    const std::string& x = need_str(a, fn);
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0
                  : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is(Value::Type::List) && affix.list().tuple) {
    for (const auto& a : affix.list().items)
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

Value str_method(Interpreter& in, const Value& sv, const std::string& name, CallArgs& a) {
  const std::string& s = sv.str();
  if (name == "startswith" || name == "endswith") {
    Params p(name, a, {"prefix"});
    if (!p.has(0)) throw TemplateError(name + "() takes at least 1 argument (0 given)");
    return Value::boolean(affix_match(p[0], s, name == "startswith", name));
  }
  if (name == "split" || name == "rsplit") {
    Params p(name, a, {"sep", "maxsplit"});
    const auto sep = opt_str(p, 0, name);
    if (sep && sep->empty()) throw TemplateError("empty separator");
    auto parts = py_split(s, sep, opt_int(p, 1, -1), name == "rsplit");
    in.charge(static_cast<int64_t>(parts.size()));
    return split_list(std::move(parts), sv.is_content());
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Params p(name, a, {"chars"});
    const StripSide side = name == "strip"    ? StripSide::Both
                           : name == "lstrip" ? StripSide::Left
                                              : StripSide::Right;
    return strip_text(sv, opt_str(p, 0, name), side);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" ||
      name == "splitlines") {
    Params p(name, a, {});
    if (name == "upper") return derived(py_upper(s), {&sv});
    if (name == "lower") return derived(py_lower(s), {&sv});
    if (name == "title") return derived(py_title(s), {&sv});
    if (name == "capitalize") return derived(py_capitalize(s), {&sv});
    return split_list(py_splitlines(s), sv.is_content());
  }
  if (name == "replace") {
    Params p(name, a, {"old", "new", "count"});
    if (!p.has(1)) throw TemplateError("replace() takes at least 2 arguments");
    need_str(p[0], name);
    need_str(p[1], name);
    return replace_text(in, sv, p[0], p[1], opt_int(p, 2, -1));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    Params p(name, a, {"sub"});
    if (!p.has(0)) throw TemplateError(name + "() takes at least 1 argument (0 given)");
    const std::string& sub = need_str(p[0], name);
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(cp_length(s)) + 1);
      int64_t n = 0;
      for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size()))
        ++n;
      return Value::integer(n);
    }
    const int64_t at = cp_index(s, name == "rfind" ? s.rfind(sub) : s.find(sub));
    if (name == "index" && at < 0) throw TemplateError("substring not found");
    return Value::integer(at);
  }
  if (name == "join") {
    Params p(name, a, {"iterable"});
    if (!p.has(0)) throw TemplateError("join() takes exactly one argument (0 given)");
    const std::vector<Value> items = iterate(p[0]);
    for (const auto& item : items) need_str(item, "sequence item of join");
    return join_text(in, sv, items);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Params p(name, a, {"affix"});
    if (!p.has(0)) throw TemplateError(name + "() takes exactly one argument (0 given)");
    const std::string& x = need_str(p[0], name);
    if (!affix_match(p[0], s, name == "removeprefix", name)) return sv;
    return name == "removeprefix" ? byte_slice(sv, x.size(), s.size())
                                  : byte_slice(sv, 0, s.size() - x.size());
  }
  Params p(name, a, {});
  return Value::boolean(py_is(s, std::string_view(name).substr(2)));
}

Value dict_method(const Dict& d, const std::string& name, CallArgs& a) {
  if (name == "get") {
    Params p(name, a, {"key", "default"});
    if (!p.has(0)) throw TemplateError("get expected at least 1 argument, got 0");
    const Value* v = d.find(p[0]);
    return v ? *v : p.get(1, Value::none());
  }
  Params p(name, a, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d.items) {
    if (name == "keys") out.push_back(k);
    if (name == "values") out.push_back(v);
    if (name == "items") out.push_back(make_list({k, v}, true));
  }
  return make_list(std::move(out));
}

Value list_method(const List& l, const std::string& name, CallArgs& a) {
  Params p(name, a, {"value"});
  if (!p.has(0)) throw TemplateError(name + "() takes exactly one argument (0 given)");
  int64_t count = 0;
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (!equals(l.items[i], p[0])) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") throw TemplateError(repr(p[0]) + " is not in list");
  return Value::integer(count);
}

[[noreturn]] void unsafe(const Value& obj, const std::string& name) {
  throw TemplateError("access to attribute '" + name + "' of '" + type_name(obj) +
                      "' object is unsafe.");
}

Value range_fn(Interpreter& in, CallArgs& a) {
  Params p("range", a, {"start", "stop", "step"});
  for (size_t i = 0; i < 3; ++i)
    if (p.has(i) && !p[i].is_integral())
      throw TemplateError("range() arguments must be integers, not " + type_name(p[i]));
  if (!p.has(0)) throw TemplateError("range expected at least 1 argument, got 0");
  int64_t start = 0, stop = p[0].as_int(), step = 1;
  if (p.has(1)) {
    start = p[0].as_int();
    stop = p[1].as_int();
  }
  if (p.has(2)) step = p[2].as_int();
  if (step == 0) throw TemplateError("range() arg 3 must not be zero");
  // The sandbox refuses ranges over 100000 items, as jinja2's does.
  const __int128 span = step > 0 ? __int128{stop} - start : __int128{start} - stop;
  const __int128 stride = step > 0 ? __int128{step} : -__int128{step};
  const __int128 count = span <= 0 ? 0 : (span + stride - 1) / stride;
  if (count > 100000)
    throw TemplateError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> items;
  for (int64_t k = 0; k < static_cast<int64_t>(count); ++k)
    items.push_back(Value::integer(static_cast<int64_t>(start + __int128{k} * step)));
  in.charge(static_cast<int64_t>(items.size()));
  return make_list(std::move(items));
}

Value namespace_fn(Interpreter& in, CallArgs& a) {
  NamespacePtr ns = in.new_namespace(false);
  for (const auto& arg : a.args) {
    if (!arg.is(Value::Type::Dict))
      throw TemplateError("namespace() positional argument must be a dict");
    for (const auto& [k, v] : arg.dict().items) ns->set(to_str(k), v);
  }
  for (const auto& [k, v] : a.kwargs) ns->set(k, v);
  return Value::ns(std::move(ns));
}

Value dict_fn(CallArgs& a) {
  std::vector<std::pair<Value, Value>> items;
  for (const auto& arg : a.args) {
    if (!arg.is(Value::Type::Dict))
      throw TemplateError("dict() positional argument must be a dict");
    items.insert(items.end(), arg.dict().items.begin(), arg.dict().items.end());
  }
  for (const auto& [k, v] : a.kwargs) items.emplace_back(Value::string(k), v);
  return make_dict(std::move(items));
}

Value strftime_now_fn(CallArgs& a) {
  Params p("strftime_now", a, {"format"});
  if (!p.has(0)) throw TemplateError("strftime_now() takes exactly one argument");
  const std::string& fmt = need_str(p[0], "strftime_now");
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  for (size_t size = 64 + fmt.size() * 4; size <= (size_t{1} << 16); size *= 4) {
    std::string buf(size, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    if (n > 0 || fmt.empty()) {
      buf.resize(n);
      return Value::string(std::move(buf));
    }
  }
  return Value::string("");
}

}  // namespace

Params::Params(const std::string& fn, const CallArgs& args, std::vector<std::string_view> names)
    : values_(names.size()), given_(names.size(), false) {
  if (args.args.size() > names.size())
    throw TemplateError(fn + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
                        std::to_string(args.args.size()) + " given)");
  for (size_t i = 0; i < args.args.size(); ++i) {
    values_[i] = args.args[i];
    given_[i] = true;
  }
  for (const auto& [k, v] : args.kwargs) {
    const auto it = std::find(names.begin(), names.end(), k);
    if (it == names.end())
      throw TemplateError(fn + "() got an unexpected keyword argument '" + k + "'");
    const auto i = static_cast<size_t>(it - names.begin());
    values_[i] = v;
    given_[i] = true;
  }
}

bool has_method(const Value& obj, std::string_view name) {
  switch (obj.type()) {
    case Value::Type::String:
      return in(kStrMethods, name);
    case Value::Type::Dict:
      return in(kDictMethods, name) || in(kMutatingDict, name);
    case Value::Type::List:
      return in(kListMethods, name) || in(kMutatingList, name);
    default:
      return false;
  }
}

Value call_method(Interpreter& in_, const Value& obj, const std::string& name, CallArgs& args) {
  switch (obj.type()) {
    case Value::Type::String:
      return str_method(in_, obj, name, args);
    case Value::Type::Dict:
      if (in(kMutatingDict, name)) unsafe(obj, name);
      return dict_method(obj.dict(), name, args);
    case Value::Type::List:
      if (in(kMutatingList, name)) unsafe(obj, name);
      return list_method(obj.list(), name, args);
    default:
      throw TemplateError("'" + type_name(obj) + "' object has no method '" + name + "'");
  }
}

Value bound_method(Interpreter& in_, const Value& obj, const std::string& name) {
  if ((obj.is(Value::Type::List) && in(kMutatingList, name)) ||
      (obj.is(Value::Type::Dict) && in(kMutatingDict, name)))
    unsafe(obj, name);
  auto c = std::make_shared<Callable>();
  c->name = name;
  Interpreter* interp = &in_;
  c->fn = [interp, obj, name](CallArgs& a) { return call_method(*interp, obj, name, a); };
  return Value::callable(std::move(c));
}

Value global_function(Interpreter& in_, const std::string& name) {
  Interpreter* interp = &in_;
  std::function<Value(CallArgs&)> fn;
  if (name == "range") {
    fn = [interp](CallArgs& a) { return range_fn(*interp, a); };
  } else if (name == "namespace") {
    fn = [interp](CallArgs& a) { return namespace_fn(*interp, a); };
  } else if (name == "dict") {
    fn = dict_fn;
  } else if (name == "raise_exception") {
    fn = [](CallArgs& a) -> Value {
      Params p("raise_exception", a, {"message"});
      throw RaisedError(p.has(0) ? to_str(p[0]) : std::string("raise_exception() called"));
    };
  } else if (name == "strftime_now") {
    fn = strftime_now_fn;
  } else {
    return Value();
  }
  auto c = std::make_shared<Callable>();
  c->name = name;
  c->fn = std::move(fn);
  return Value::callable(std::move(c));
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined:
      return false;
    case Value::Type::String:
      if (!item.is_string())
        throw TemplateError("'in <string>' requires string as left operand, not " +
                            type_name(item));
      return container.str().find(item.str()) != std::string::npos;
    case Value::Type::List:
      for (const auto& v : container.list().items)
        if (equals(v, item)) return true;
      return false;
    case Value::Type::Dict:
      if ((item.is(Value::Type::List) && !item.list().tuple) || item.is(Value::Type::Dict))
        throw TemplateError("unhashable type: '" + type_name(item) + "'");
      return container.dict().find(item) != nullptr;
    default:
      throw TemplateError("argument of type '" + type_name(container) + "' is not iterable");
  }
}

}  // namespace dspark::jinja
