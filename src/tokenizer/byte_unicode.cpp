#include "byte_unicode.h"

#include <array>

#include "dspark/text.h"

namespace dspark::tok {

namespace {

struct Tables {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 512> to_byte{};  // indexed by code point; all mapped characters are < 512
};

const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    t.to_byte.fill(-1);
    // Printable bytes keep their own code point; the rest get U+0100 + n in byte order.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? static_cast<char32_t>(b) : 0x100 + next++;
      t.to_unicode[b] = cp;
      t.to_byte[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

char32_t byte_to_unicode(uint8_t b) {
  return tables().to_unicode[b];
}

int unicode_to_byte(char32_t cp) {
  return cp < 512 ? tables().to_byte[cp] : -1;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(byte_to_unicode(static_cast<uint8_t>(c)), &out);
  return out;
}

bool byte_level_to_bytes(std::string_view s, std::string* out) {
  std::string bytes;
  bytes.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    if (utf8_valid_len(s, pos) == 0) return false;
    const int b = unicode_to_byte(utf8_next(s, &pos));
    if (b < 0) return false;
    bytes.push_back(static_cast<char>(b));
  }
  *out = std::move(bytes);
  return true;
}

}  // namespace dspark::tok
