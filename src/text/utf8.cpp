#include "dspark/text.h"

namespace dspark {

namespace {

// Valid range of the second byte for a lead byte (Unicode Table 3-7); lo > hi marks an invalid
// lead byte.
struct LeadInfo {
  int len;
  uint8_t lo, hi;
};

LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 1, 0};
}

// Number of bytes at pos that belong to a valid (possibly incomplete) sequence, and its full
// length; matched == full means a complete character.
void scan(std::string_view s, size_t pos, size_t* matched, size_t* full) {
  const auto b = static_cast<uint8_t>(s[pos]);
  const LeadInfo info = lead_info(b);
  *full = static_cast<size_t>(info.len);
  if (info.len == 0) {
    *matched = 0;
    return;
  }
  size_t n = 1;
  for (int k = 1; k < info.len && pos + n < s.size(); ++k) {
    const auto c = static_cast<uint8_t>(s[pos + n]);
    const uint8_t lo = k == 1 ? info.lo : 0x80;
    const uint8_t hi = k == 1 ? info.hi : 0xBF;
    if (c < lo || c > hi) break;
    ++n;
  }
  *matched = n;
}

}  // namespace

size_t utf8_valid_len(std::string_view s, size_t pos) {
  size_t matched = 0, full = 0;
  scan(s, pos, &matched, &full);
  return matched == full ? full : 0;
}

size_t utf8_maximal_subpart(std::string_view s, size_t pos) {
  size_t matched = 0, full = 0;
  scan(s, pos, &matched, &full);
  return matched == 0 ? 1 : matched;
}

bool utf8_incomplete_tail(std::string_view s, size_t pos) {
  size_t matched = 0, full = 0;
  scan(s, pos, &matched, &full);
  return matched > 0 && matched < full && pos + matched == s.size();
}

bool utf8_is_valid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t n = utf8_valid_len(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t n = utf8_valid_len(s, pos);
    if (n > 0) {
      out.append(s.substr(pos, n));
      pos += n;
    } else {
      utf8_append(kReplacementChar, &out);
      pos += utf8_maximal_subpart(s, pos);
    }
  }
  return out;
}

char32_t utf8_next(std::string_view s, size_t* pos) {
  const auto b0 = static_cast<uint8_t>(s[*pos]);
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  if (*pos + n > s.size()) n = 1;  // never read past the end, even on invalid input
  char32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[*pos + k]) & 0x3F);
  *pos += n;
  return cp;
}

void utf8_append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_unicode_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

}  // namespace dspark
