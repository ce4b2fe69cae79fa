// Values of the Jinja interpreter: Python's object model reduced to what chat templates touch
// (undefined, None, bool, int, float, str, list/tuple, dict, namespace, callables), with the
// conversions jinja2 applies: str(), repr(), truthiness, ==, ordering and HF's tojson.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "jinja_marks.h"

namespace dspark::jinja {

// Raised inside the interpreter (parse and render) and caught at ChatTemplate's entry points,
// which return it as an Error value; it never crosses the module border.
struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Deepest container nesting a value may have; keeps recursive printing and destruction bounded.
inline constexpr int kMaxValueDepth = 256;

class Value;
struct List;
struct Dict;
struct Namespace;
struct Callable;
using ListPtr = std::shared_ptr<const List>;
using DictPtr = std::shared_ptr<const Dict>;
using NamespacePtr = std::shared_ptr<Namespace>;
using CallablePtr = std::shared_ptr<const Callable>;

// An undefined value remembers what was looked up, for "'x' is undefined" errors.
struct Undefined {
  std::string hint;
};
struct None {};

class Value {
 public:
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value none() { return Value(None{}); }
  static Value boolean(bool b) { return Value(b); }
  static Value integer(int64_t i) { return Value(i); }
  static Value number(double d) { return Value(d); }
  static Value string(std::string s) {
    return Value(std::make_shared<const MarkedText>(MarkedText{std::move(s), {}}));
  }
  // A string whose marked bytes came from the conversation's data (jinja_marks.h).
  static Value string(std::string s, Marks marks) {
    return Value(std::make_shared<const MarkedText>(MarkedText{std::move(s), std::move(marks)}));
  }
  static Value text(MarkedText t) {
    return Value(std::make_shared<const MarkedText>(std::move(t)));
  }
  static Value list(ListPtr l) { return Value(std::move(l)); }
  static Value dict(DictPtr d) { return Value(std::move(d)); }
  static Value ns(NamespacePtr n) { return Value(std::move(n)); }
  static Value callable(CallablePtr c) { return Value(std::move(c)); }

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is(Type t) const { return type() == t; }
  bool is_undefined() const { return is(Type::Undefined); }
  bool is_none() const { return is(Type::None); }
  bool is_string() const { return is(Type::String); }
  // int, float or bool (Python's bool is an int).
  bool is_number() const { return is(Type::Int) || is(Type::Float) || is(Type::Bool); }
  bool is_integral() const { return is(Type::Int) || is(Type::Bool); }

  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;   // int or bool
  double as_float() const;  // any number
  const std::string& str() const { return std::get<StringPtr>(v_)->text; }
  const Marks& marks() const { return std::get<StringPtr>(v_)->marks; }  // strings only
  // A string some byte of which is marked.
  bool is_content() const { return is_string() && !marks().empty(); }
  const List& list() const { return *std::get<ListPtr>(v_); }
  const ListPtr& list_ptr() const { return std::get<ListPtr>(v_); }
  const Dict& dict() const { return *std::get<DictPtr>(v_); }
  const NamespacePtr& ns() const { return std::get<NamespacePtr>(v_); }
  const Callable& callable() const { return *std::get<CallablePtr>(v_); }
  const void* identity() const;  // address of the shared object, or null for scalars
  int depth() const;             // container nesting (0 for scalars)

 private:
  template <class T>
  explicit Value(T v) : v_(std::move(v)) {}
  // Strings are shared: templates look the same message text up many times.
  using StringPtr = std::shared_ptr<const MarkedText>;
  std::variant<Undefined, None, bool, int64_t, double, StringPtr, ListPtr, DictPtr, NamespacePtr,
               CallablePtr>
      v_;
};

struct List {
  std::vector<Value> items;
  bool tuple = false;
  // Result of a lazy jinja2 filter (map, select, unique, ...), which Python sees as a
  // generator: always true, no len(), not indexable, prints as "<generator object>".
  bool generator = false;
  int depth = 1;
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;  // insertion order, as Python dicts keep it
  int depth = 1;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
};

// namespace() objects (the only mutable values) and loop contexts (read-only, is_loop).
struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  bool is_loop = false;
  int depth = 1;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value v);
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

// Containers; throw when nesting would exceed kMaxValueDepth.
Value make_list(std::vector<Value> items, bool tuple = false);
Value make_dict(std::vector<std::pair<Value, Value>> items);
Value make_generator(std::vector<Value> items);
bool is_generator(const Value& v);

bool truthy(const Value& v);
// Python's type name ("str", "int", "NoneType", ...), for error messages and repr.
std::string type_name(const Value& v);
// str(v) as jinja2 prints it: undefined -> "", None -> "None", containers as repr. When
// `content` is given it is set if a marked string went into the text.
std::string to_str(const Value& v, bool* content = nullptr);
std::string repr(const Value& v, bool* content = nullptr);
// str(v) as a string value: a string keeps its marks; other values print unmarked, except
// containers holding marked strings, whose whole text is marked.
Value to_text(const Value& v);
// s[index] of a string (a Python index), keeping the character's mark; nullopt when out of
// range.
std::optional<Value> char_at(const Value& s, int64_t index);
// The bytes [begin, end) of a string, with their marks.
Value byte_slice(const Value& s, size_t begin, size_t end);
// A string computed from the given inputs by a transformation that does not keep bytes in
// place: all of it is marked when any input is a marked string.
Value derived(std::string s, std::initializer_list<const Value*> inputs);
// Python's repr of a float ("1.0", "1e+16", "0.1").
std::string float_repr(double d);

struct JsonStyle {
  std::string indent;  // used when has_indent
  bool has_indent = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// json.dumps with the given options (HF's tojson); throws for values JSON cannot hold.
// `content` as in to_str.
std::string to_json(const Value& v, const JsonStyle& style, bool* content = nullptr);

// Python ==, and ordering for <, <=, >, >= (throws TypeError-like errors for mixed types).
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b, std::string_view op);

[[noreturn]] void throw_undefined(const Value& v);

}  // namespace dspark::jinja
