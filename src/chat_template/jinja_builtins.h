// Jinja builtins: the filters, tests, str/dict/list methods and global functions (range,
// namespace, dict, raise_exception, strftime_now) that chat templates use, with jinja2's and
// Python's semantics, plus Hugging Face's tojson.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jinja_text.h"
#include "jinja_value.h"

namespace dspark::jinja {

class Interpreter;

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

Value apply_filter(Interpreter& in, const std::string& name, Value subject, CallArgs& args);
bool apply_test(Interpreter& in, const std::string& name, const Value& subject, CallArgs& args);

// Methods of str, dict and list values (and the mutating ones, which the immutable sandbox
// refuses when called or looked up).
bool has_method(const Value& obj, std::string_view name);
Value call_method(Interpreter& in, const Value& obj, const std::string& name, CallArgs& args);
Value bound_method(Interpreter& in, const Value& obj, const std::string& name);

// The template globals; undefined for other names.
Value global_function(Interpreter& in, const std::string& name);

// String operations that keep the marks of the bytes they keep (jinja_string_ops.cpp).
// str.strip/lstrip/rstrip of a string value.
Value strip_text(const Value& s, const std::optional<std::string>& chars, StripSide side);
// str.replace: kept bytes keep their marks, each insertion has the replacement's marks; a marked
// `old` marks the whole result.
Value replace_text(Interpreter& in, const Value& s, const Value& old, const Value& with,
                   int64_t count);
// sep.join(items) of string values: every piece keeps its marks.
Value join_text(Interpreter& in, const Value& sep, const std::vector<Value>& items);
// The parts of a split as a list of strings, each marked whole when `marked` (splitting a
// marked string is treated as a transformation).
Value split_list(std::vector<std::string> parts, bool marked);

// Python's "item in container".
bool contains(const Value& container, const Value& item);

// Binds call arguments to named parameters like a Python signature.
class Params {
 public:
  Params(const std::string& fn, const CallArgs& args, std::vector<std::string_view> names);
  bool has(size_t i) const { return given_[i]; }
  const Value& operator[](size_t i) const { return values_[i]; }
  // The argument, or the fallback when it was not passed.
  Value get(size_t i, Value fallback) const { return given_[i] ? values_[i] : fallback; }

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
};

}  // namespace dspark::jinja
