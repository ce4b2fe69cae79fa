// Provenance of template strings: which bytes came from the conversation's data (message
// content, names, tool calls and results, tools) rather than from the template. Every string
// operation of the interpreter carries these marks, so the rendered prompt says which of its
// bytes are content, and the tokenizer never turns content bytes into control tokens.
//
// Operations that keep bytes in place (concatenation, slicing, indexing, iteration, strip,
// join, replace, removeprefix/removesuffix) keep the marks byte for byte; operations that
// transform text (case changes, escaping, tojson, indent, splitting a mixed string, printing
// containers) mark all of their output when any input byte was marked. Numbers, booleans and
// None carry no marks (they print as digits, True/False/None).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dspark/text.h"

namespace dspark::jinja {

// Marked byte ranges of one string: sorted, disjoint, non-empty and never touching.
class Marks {
 public:
  // Every byte of a string of that size (nothing when size is 0).
  static Marks whole(size_t size);

  bool empty() const { return ranges_.empty(); }
  const std::vector<ByteSpan>& ranges() const { return ranges_; }
  // Marks [begin, end); begin must not precede the end of the last range.
  void add(size_t begin, size_t end);
  // Appends other's ranges shifted by offset, which must not precede the end of the last range.
  void append(const Marks& other, size_t offset);
  // The ranges inside [begin, end), shifted so that begin becomes 0.
  Marks slice(size_t begin, size_t end) const;
  // Whether some byte of [begin, end) is marked.
  bool any(size_t begin, size_t end) const;

 private:
  std::vector<ByteSpan> ranges_;
};

// A string with its marks, built by appending.
struct MarkedText {
  std::string text;
  Marks marks;

  void append(std::string_view s, bool marked);
  void append(std::string_view s, const Marks& m);
  // Appends one code point (UTF-8), marked or not.
  void append_cp(char32_t cp, bool marked);
};

// Per code point of s (as code_points(s) splits it): whether any of its bytes is marked.
std::vector<bool> cp_marks(std::string_view s, const Marks& marks);

// The code points cps[picks[0]], cps[picks[1]], ... with the marks of their flags (flags may be
// empty: nothing marked).
MarkedText text_from_cps(const std::vector<char32_t>& cps, const std::vector<bool>& flags,
                         const std::vector<size_t>& picks);

}  // namespace dspark::jinja
