// String builtins that keep marks byte for byte (jinja_marks.h): strip, replace, join, split.
#include "dspark/text.h"
#include "jinja_builtins.h"
#include "jinja_eval.h"

namespace dspark::jinja {

Value strip_text(const Value& s, const std::optional<std::string>& chars, StripSide side) {
  const std::string& text = s.str();
  std::string out = py_strip(text, chars, side);
  if (!s.is_content()) return Value::string(std::move(out));
  // The result is a substring: find where it starts from the left-stripped length.
  size_t begin = 0;
  if (side == StripSide::Left) begin = text.size() - out.size();
  if (side == StripSide::Both) begin = text.size() - py_strip(text, chars, StripSide::Left).size();
  if (begin + out.size() > text.size() || text.compare(begin, out.size(), out) != 0) {
    return derived(std::move(out), {&s});  // invalid UTF-8 was rewritten: mark all
  }
  return byte_slice(s, begin, begin + out.size());
}

Value replace_text(Interpreter& in, const Value& s, const Value& old, const Value& with,
                   int64_t count) {
  std::string out = py_replace(s.str(), old.str(), with.str(), count);
  in.check_size(out.size());
  if (old.is_content()) return derived(std::move(out), {&old});
  if (!s.is_content() && !with.is_content()) return Value::string(std::move(out));
  const std::string& text = s.str();
  MarkedText t;
  int64_t done = 0;
  auto insert = [&] {
    if (count >= 0 && done >= count) return;
    t.append(with.str(), with.marks());
    ++done;
  };
  auto keep = [&](size_t begin, size_t end) {
    t.append(std::string_view(text).substr(begin, end - begin), s.marks().slice(begin, end));
  };
  size_t pos = 0;
  if (old.str().empty()) {
    // Python inserts the replacement before every character and at the end.
    while (pos < text.size()) {
      insert();
      const size_t start = pos;
      utf8_next(text, &pos);
      keep(start, pos);
    }
    insert();
  } else {
    while (count < 0 || done < count) {
      const size_t hit = text.find(old.str(), pos);
      if (hit == std::string::npos) break;
      keep(pos, hit);
      insert();
      pos = hit + old.str().size();
    }
    keep(pos, text.size());
  }
  if (t.text != out) return derived(std::move(out), {&s, &with});  // invalid UTF-8 rewritten
  return Value::text(std::move(t));
}

Value join_text(Interpreter& in, const Value& sep, const std::vector<Value>& items) {
  MarkedText out;
  bool first = true;
  for (const Value& item : items) {
    if (!first) out.append(sep.str(), sep.marks());
    first = false;
    out.append(item.str(), item.marks());
    in.check_size(out.text.size());
  }
  return Value::text(std::move(out));
}

Value split_list(std::vector<std::string> parts, bool marked) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& s : parts) {
    const size_t n = s.size();
    items.push_back(marked ? Value::string(std::move(s), Marks::whole(n))
                           : Value::string(std::move(s)));
  }
  return make_list(std::move(items));
}

}  // namespace dspark::jinja
