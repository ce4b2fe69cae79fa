#include "dspark/text.h"

#include <gtest/gtest.h>

namespace dspark {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ValidLengths) {
  EXPECT_EQ(utf8_valid_len("a", 0), 1u);
  EXPECT_EQ(utf8_valid_len("\xC3\xA9", 0), 2u);
  EXPECT_EQ(utf8_valid_len("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(utf8_valid_len("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(utf8_valid_len("\xC0\xAF", 0), 0u);          // overlong
  EXPECT_EQ(utf8_valid_len("\xED\xA0\x80", 0), 0u);      // surrogate
  EXPECT_EQ(utf8_valid_len("\xF4\x90\x80\x80", 0), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8_valid_len("\xE2\x82", 0), 0u);          // truncated
}

TEST(Utf8, SanitizeReplacesEachMaximalSubpart) {
  // Same results as Python's bytes.decode("utf-8", "replace").
  EXPECT_EQ(utf8_sanitize("ok"), "ok");
  EXPECT_EQ(utf8_sanitize("a\xFF"
                          "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(utf8_sanitize("\xE2\x82"
                          "x"),
            kFffd + "x");                               // one for a truncated sequence
  EXPECT_EQ(utf8_sanitize("\xE0\x80"), kFffd + kFffd);  // E0 needs A0..BF next
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98"), kFffd);      // truncated at the end
  EXPECT_EQ(utf8_sanitize("\x80\x80"), kFffd + kFffd);  // lone continuations
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_FALSE(utf8_is_valid("a\xFF"));
  EXPECT_TRUE(utf8_is_valid("h\xC3\xA9llo \xF0\x9F\x98\x80"));
}

TEST(Utf8, IncompleteTail) {
  EXPECT_TRUE(utf8_incomplete_tail("\xE2\x82", 0));
  EXPECT_TRUE(utf8_incomplete_tail("\xF0", 0));
  EXPECT_FALSE(utf8_incomplete_tail("\xE2\x82\xAC", 0));  // complete
  EXPECT_FALSE(
      utf8_incomplete_tail("\xE2"
                           "a",
                           0));  // broken, not incomplete
  EXPECT_FALSE(utf8_incomplete_tail("\xFF", 0));
}

TEST(Utf8, DecodeEncodeRoundTrip) {
  for (char32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F600u, 0x10FFFFu}) {
    std::string s;
    utf8_append(cp, &s);
    size_t pos = 0;
    EXPECT_EQ(utf8_next(s, &pos), cp);
    EXPECT_EQ(pos, s.size());
  }
}

TEST(Utf8, Whitespace) {
  EXPECT_TRUE(is_unicode_whitespace(' '));
  EXPECT_TRUE(is_unicode_whitespace('\n'));
  EXPECT_TRUE(is_unicode_whitespace(0x3000));
  EXPECT_FALSE(is_unicode_whitespace('a'));
  EXPECT_FALSE(is_unicode_whitespace(0x200B));  // zero-width space is not White_Space
}

}  // namespace
}  // namespace dspark
