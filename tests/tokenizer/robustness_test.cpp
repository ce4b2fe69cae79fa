// Random bytes and random ids: nothing crashes, byte-level encoding round-trips (after U+FFFD
// replacement), and streaming output is always valid UTF-8.
#include <gtest/gtest.h>

#include <random>

#include "dspark/text.h"
#include "test_util.h"

namespace dspark::tok {
namespace {

std::string random_bytes(std::mt19937& rng, size_t max_len) {
  // Bias toward bytes that form (and break) multi-byte sequences and special-token text.
  static const char kAlphabet[] = "ab <|>\n\t \x80\xBF\xC3\xA9\xE2\x82\xAC\xF0\x9F\xFF";
  static const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  std::string s(rng() % (max_len + 1), '\0');
  for (char& c : s) {
    c = rng() % 4 == 0 ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
  }
  return s;
}

TEST(Robustness, RandomBytesRoundTripThroughByteLevel) {
  AddedToken end;
  end.content = "<|end|>";
  end.special = true;
  auto t =
      testing::build(testing::byte_level_spec({{"a", "b"}, {" ", "a"}, {"\xC3", "\xA9"}}, {end}));
  ASSERT_TRUE(t);
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    const std::string text =
        random_bytes(rng, 64) + (i % 3 == 0 ? "<|end|>" : "") + random_bytes(rng, 8);
    const std::string clean = utf8_sanitize(text);
    for (bool parse_special : {false, true}) {
      const auto ids = t->encode(text, true, parse_special);
      ASSERT_EQ(t->decode(ids, true), clean) << i;
      StreamingDetokenizer d(*t, true);
      std::string streamed;
      for (int32_t id : ids) streamed += d.push(id);
      streamed += d.flush();
      ASSERT_EQ(streamed, clean) << i;
    }
  }
}

TEST(Robustness, RandomIdsDecodeAndStreamSafely) {
  auto t = testing::build(testing::byte_level_spec({{"a", "b"}}));
  ASSERT_TRUE(t);
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::vector<int32_t> ids(rng() % 20);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % 300) - 20;  // some out of range
    StreamingDetokenizer d(*t);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = d.push(id);
      ASSERT_TRUE(utf8_is_valid(piece));
      streamed += piece;
    }
    streamed += d.flush();
    ASSERT_TRUE(utf8_is_valid(streamed));
    EXPECT_EQ(streamed, utf8_sanitize(t->decode(ids, false)));
  }
}

}  // namespace
}  // namespace dspark::tok
