// Special / added token parsing: parse_special, non-special added tokens, longest match,
// lstrip/rstrip, single_word.
#include <gtest/gtest.h>

#include "test_util.h"

namespace dspark::tok {
namespace {

using testing::build;
using testing::byte_level_spec;
using testing::id_of_bytes;

AddedToken special(const std::string& content) {
  AddedToken t;
  t.content = content;
  t.special = true;
  return t;
}

TEST(AddedTokens, ParseSpecialSwitch) {
  auto t = build(byte_level_spec({}, {special("<|im_start|>"), special("<|im_end|>")}));
  ASSERT_TRUE(t);
  const int32_t start = t->token_id("<|im_start|>");
  const int32_t end = t->token_id("<|im_end|>");
  ASSERT_GE(start, 256);
  const auto on = t->encode("<|im_start|>hi<|im_end|>", false, true);
  EXPECT_EQ(on, (std::vector<int32_t>{start, 'h', 'i', end}));
  const auto off = t->encode("<|im_start|>hi<|im_end|>", false, false);
  EXPECT_EQ(std::count(off.begin(), off.end(), start), 0);
  EXPECT_EQ(t->decode(off, false), "<|im_start|>hi<|im_end|>");
  EXPECT_EQ(t->decode(on, false), "hi");
  EXPECT_EQ(t->decode(on, true), "<|im_start|>hi<|im_end|>");
  EXPECT_TRUE(t->is_special(start));
  EXPECT_EQ(t->stop_ids(), (std::vector<int32_t>{end}));
}

TEST(AddedTokens, NonSpecialAreAlwaysMatched) {
  AddedToken tool;
  tool.content = "<tool>";
  auto t = build(byte_level_spec({}, {tool}));
  ASSERT_TRUE(t);
  const int32_t id = t->token_id("<tool>");
  EXPECT_EQ(t->encode("a<tool>", false, false), (std::vector<int32_t>{'a', id}));
  EXPECT_FALSE(t->is_special(id));
  EXPECT_EQ(t->decode({id}, false), "<tool>");
}

TEST(AddedTokens, LongestMatchWins) {
  auto t = build(byte_level_spec({}, {special("<a>"), special("<a><b>"), special("<b>")}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("<a><b><b>", false, true),
            (std::vector<int32_t>{t->token_id("<a><b>"), t->token_id("<b>")}));
}

TEST(AddedTokens, StripFlagsSwallowWhitespace) {
  AddedToken mask = special("<mask>");
  mask.lstrip = true;
  mask.rstrip = true;
  auto t = build(byte_level_spec({}, {mask}));
  ASSERT_TRUE(t);
  const int32_t id = t->token_id("<mask>");
  EXPECT_EQ(t->encode("a  <mask>\n b", false, true), (std::vector<int32_t>{'a', id, 'b'}));
}

TEST(AddedTokens, SingleWordOnlyOutsideWords) {
  AddedToken tok;
  tok.content = "cat";
  tok.single_word = true;
  auto t = build(byte_level_spec({}, {tok}));
  ASSERT_TRUE(t);
  const int32_t id = t->token_id("cat");
  EXPECT_EQ(t->encode("a cat.", false, false), (std::vector<int32_t>{'a', ' ', id, '.'}));
  const auto inside = t->encode("concatenate", false, false);
  EXPECT_EQ(std::count(inside.begin(), inside.end(), id), 0);
}

TEST(AddedTokens, SkippedSpecialMatchesAreTextInBetween) {
  auto t = build(byte_level_spec({}, {special("<s>")}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("x<s>", false, false), (std::vector<int32_t>{'x', '<', 's', '>'}));
  EXPECT_EQ(id_of_bytes(*t, "<"), '<');
}

}  // namespace
}  // namespace dspark::tok
