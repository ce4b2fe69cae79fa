#include "jinja_marks.h"

#include <algorithm>

#include "dspark/text.h"

namespace dspark::jinja {

Marks Marks::whole(size_t size) {
  Marks m;
  m.add(0, size);
  return m;
}

void Marks::add(size_t begin, size_t end) {
  if (end <= begin) return;
  if (!ranges_.empty() && ranges_.back().end >= begin) {
    ranges_.back().end = std::max(ranges_.back().end, end);
    return;
  }
  ranges_.push_back({begin, end});
}

void Marks::append(const Marks& other, size_t offset) {
  for (const ByteSpan& r : other.ranges_) add(r.begin + offset, r.end + offset);
}

Marks Marks::slice(size_t begin, size_t end) const {
  Marks out;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), begin,
                             [](size_t pos, const ByteSpan& r) { return pos < r.end; });
  for (; it != ranges_.end() && it->begin < end; ++it) {
    out.add(std::max(it->begin, begin) - begin, std::min(it->end, end) - begin);
  }
  return out;
}

bool Marks::any(size_t begin, size_t end) const {
  if (end <= begin) return false;
  // The first range ending after begin is the only one that can overlap first.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), begin,
                             [](size_t pos, const ByteSpan& r) { return pos < r.end; });
  return it != ranges_.end() && it->begin < end;
}

void MarkedText::append(std::string_view s, bool marked) {
  const size_t at = text.size();
  text.append(s);
  if (marked) marks.add(at, text.size());
}

void MarkedText::append(std::string_view s, const Marks& m) {
  const size_t at = text.size();
  text.append(s);
  marks.append(m, at);
}

void MarkedText::append_cp(char32_t cp, bool marked) {
  const size_t at = text.size();
  utf8_append(cp, &text);
  if (marked) marks.add(at, text.size());
}

std::vector<bool> cp_marks(std::string_view s, const Marks& marks) {
  std::vector<bool> out;
  if (marks.empty()) return out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    utf8_next(s, &pos);
    out.push_back(marks.any(start, pos));
  }
  return out;
}

MarkedText text_from_cps(const std::vector<char32_t>& cps, const std::vector<bool>& flags,
                         const std::vector<size_t>& picks) {
  MarkedText out;
  for (size_t i : picks) out.append_cp(cps[i], !flags.empty() && flags[i]);
  return out;
}

}  // namespace dspark::jinja
