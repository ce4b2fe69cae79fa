#include "content_spans.h"

#include <algorithm>

#include "dspark/text.h"

namespace dspark::tok {

std::vector<ByteSpan> canonical_spans(std::span<const ByteSpan> spans, size_t size) {
  std::vector<ByteSpan> sorted;
  for (ByteSpan s : spans) {
    s.end = std::min(s.end, size);
    if (s.begin < s.end) sorted.push_back(s);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const ByteSpan& a, const ByteSpan& b) { return a.begin < b.begin; });
  std::vector<ByteSpan> out;
  for (const ByteSpan& s : sorted) {
    if (!out.empty() && s.begin <= out.back().end) {
      out.back().end = std::max(out.back().end, s.end);
    } else {
      out.push_back(s);
    }
  }
  return out;
}

void sanitize_with_spans(std::string_view text, std::vector<ByteSpan>* spans, std::string* out) {
  out->clear();
  std::vector<ByteSpan> moved;
  size_t pos = 0;
  for (const ByteSpan& s : *spans) {
    out->append(utf8_sanitize(text.substr(pos, s.begin - pos)));
    const size_t begin = out->size();
    out->append(utf8_sanitize(text.substr(s.begin, s.end - s.begin)));
    moved.push_back({begin, out->size()});
    pos = s.end;
  }
  out->append(utf8_sanitize(text.substr(pos)));
  *spans = std::move(moved);
}

std::vector<ByteSpan> spans_within(std::span<const ByteSpan> spans, size_t begin, size_t end) {
  std::vector<ByteSpan> out;
  for (const ByteSpan& s : spans) {
    const size_t b = std::max(s.begin, begin), e = std::min(s.end, end);
    if (b < e) out.push_back({b - begin, e - begin});
  }
  return out;
}

std::vector<ByteSpan> normalized_spans(const std::vector<NormalizerStep>& steps,
                                       std::string_view text, std::string_view normalized,
                                       std::span<const ByteSpan> spans) {
  const std::vector<ByteSpan> all = {{0, normalized.size()}};
  // Each boundary normalizes a prefix: bound the work for texts cut into many ranges.
  if (spans.size() > 64) return all;
  auto map = [&](size_t b, size_t* to) {
    const std::string prefix = normalize(steps, text.substr(0, b));
    if (normalized.substr(0, prefix.size()) != prefix) return false;
    *to = prefix.size();
    return true;
  };
  std::vector<ByteSpan> out;
  for (const ByteSpan& s : spans) {
    ByteSpan m;
    if (!map(s.begin, &m.begin) || !map(s.end, &m.end)) return all;
    if (m.begin < m.end) out.push_back(m);
  }
  return out;
}

}  // namespace dspark::tok
