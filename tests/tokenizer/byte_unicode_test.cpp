#include "tokenizer/byte_unicode.h"

#include <gtest/gtest.h>

#include <set>

namespace dspark::tok {
namespace {

TEST(ByteUnicode, KnownSpellings) {
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);   // "Ġ"
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_to_unicode('\t'), 0x109u);  // "ĉ"
  EXPECT_EQ(byte_to_unicode(0), 0x100u);
  EXPECT_EQ(byte_to_unicode('A'), static_cast<char32_t>('A'));
  EXPECT_EQ(byte_to_unicode(0xA1), 0xA1u);   // printable Latin-1 keeps its code point
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);  // soft hyphen is not printable: last remapped
  EXPECT_EQ(byte_to_unicode(0x7F), 0x121u);
}

TEST(ByteUnicode, IsABijection) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = byte_to_unicode(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(cp).second);
    EXPECT_EQ(unicode_to_byte(cp), b);
  }
  EXPECT_EQ(unicode_to_byte(0x20), -1);  // space itself is not in the alphabet
  EXPECT_EQ(unicode_to_byte(0x4E00), -1);
}

TEST(ByteUnicode, StringsRoundTrip) {
  const std::string raw = std::string("Hello world\n\t\x00\xFF", 15) + "\xE4\xBD\xA0";
  const std::string spelled = bytes_to_byte_level(raw);
  EXPECT_EQ(spelled.substr(0, 7), "Hello\xC4\xA0");  // "HelloĠ"
  std::string back;
  ASSERT_TRUE(byte_level_to_bytes(spelled, &back));
  EXPECT_EQ(back, raw);
  EXPECT_FALSE(byte_level_to_bytes("a b", &back));  // raw space is outside the alphabet
  EXPECT_EQ(back, raw);                             // untouched on failure
}

}  // namespace
}  // namespace dspark::tok
