// Normalizers and pre-tokenizers on their own: split behaviours, digits, Metaspace, regexes.
#include "tokenizer/pipeline.h"

#include <gtest/gtest.h>

namespace dspark::tok {
namespace {

std::vector<std::string> pieces(const std::vector<PreTokenizerStep>& steps, std::string_view text,
                                bool at_start = true) {
  std::vector<Piece> out;
  pre_tokenize(steps, text, at_start, &out);
  std::vector<std::string> s;
  for (auto& p : out) s.push_back(p.text);
  return s;
}

PreTokenizerStep split(const std::string& pattern, SplitBehavior b, bool invert = false) {
  auto step = make_split_step(pattern, true, b, invert);
  return std::move(step).value();
}

using V = std::vector<std::string>;

TEST(Pipeline, SplitBehaviours) {
  const std::string text = "a--b-c";
  EXPECT_EQ(pieces({split("-", SplitBehavior::Removed)}, text), (V{"a", "b", "c"}));
  EXPECT_EQ(pieces({split("-", SplitBehavior::Isolated)}, text), (V{"a", "-", "-", "b", "-", "c"}));
  EXPECT_EQ(pieces({split("-", SplitBehavior::MergedWithPrevious)}, text),
            (V{"a-", "-", "b-", "c"}));
  EXPECT_EQ(pieces({split("-", SplitBehavior::MergedWithNext)}, text), (V{"a", "-", "-b", "-c"}));
  EXPECT_EQ(pieces({split("-", SplitBehavior::Contiguous)}, text), (V{"a", "--", "b", "-", "c"}));
  EXPECT_EQ(pieces({split("-", SplitBehavior::Removed, true)}, text), (V{"-", "-", "-"}));
}

TEST(Pipeline, Gpt2Regex) {
  auto bl = make_byte_level_step(false, true);
  ASSERT_TRUE(bl.ok());
  EXPECT_EQ(pieces({bl.value()}, "I'm  fine,\tthanks 123!\n\n"),
            (V{"I", "'m", " ", " fine", ",", "\t", "thanks", " 123", "!", "\n\n"}));
  EXPECT_EQ(pieces({bl.value()}, "\xE4\xBD\xA0\xE5\xA5\xBD world"),
            (V{"\xE4\xBD\xA0\xE5\xA5\xBD", " world"}));
}

TEST(Pipeline, DigitsThenByteLevel) {
  auto digits = make_digits_step(true);
  auto bl = make_byte_level_step(false, true);
  ASSERT_TRUE(digits.ok() && bl.ok());
  EXPECT_EQ(pieces({digits.value(), bl.value()}, "ab 123x"), (V{"ab", " ", "1", "2", "3", "x"}));
  auto grouped = make_digits_step(false);
  EXPECT_EQ(pieces({grouped.value()}, "ab 123x"), (V{"ab ", "123", "x"}));
}

TEST(Pipeline, ByteLevelPrefixSpace) {
  auto bl = make_byte_level_step(true, true);
  EXPECT_EQ(pieces({bl.value()}, "hi there"), (V{" hi", " there"}));
  EXPECT_EQ(pieces({bl.value()}, " hi"), (V{" hi"}));
}

TEST(Pipeline, Metaspace) {
  const std::string m = "\xE2\x96\x81";
  auto always = make_metaspace_step(m, PreTokenizerStep::Prepend::Always, true);
  EXPECT_EQ(pieces({always.value()}, "hi there"), (V{m + "hi", m + "there"}));
  auto first = make_metaspace_step(m, PreTokenizerStep::Prepend::First, false);
  EXPECT_EQ(pieces({first.value()}, "a b", true), (V{m + "a" + m + "b"}));
  EXPECT_EQ(pieces({first.value()}, "a b", false), (V{"a" + m + "b"}));
  auto never = make_metaspace_step(m, PreTokenizerStep::Prepend::Never, false);
  EXPECT_EQ(pieces({never.value()}, " a"), (V{m + "a"}));
}

TEST(Pipeline, Normalizers) {
  const std::vector<NormalizerStep> steps = {{NormalizerStep::Kind::Nfc, "", ""},
                                             {NormalizerStep::Kind::Prepend, "_", ""},
                                             {NormalizerStep::Kind::Replace, " ", "_"}};
  EXPECT_EQ(normalize(steps, "e\xCC\x81 x"), "_\xC3\xA9_x");
  EXPECT_EQ(normalize(steps, ""), "");  // Prepend leaves empty text alone
}

TEST(Pipeline, BadRegexIsAnError) {
  auto step = make_split_step("(unclosed", false, SplitBehavior::Isolated, false);
  ASSERT_FALSE(step.ok());
  EXPECT_NE(step.error().message.find("(unclosed"), std::string::npos);
}

TEST(Pipeline, LongWhitespaceRun) {
  auto bl = make_byte_level_step(false, true);
  const std::string text = std::string(100000, ' ') + "x";
  const auto p = pieces({bl.value()}, text);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].size(), 99999u);
  EXPECT_EQ(p[1], " x");
}

TEST(Pipeline, SplitAfterByteLevelSeesByteSpelling) {
  // After ByteLevel, "½" (C2 BD) is spelled "Â½", and "½" alone is a number: Digits cuts the
  // character in two, as Falcon's tokenizer.json does in Hugging Face.
  std::vector<PreTokenizerStep> steps;
  steps.push_back(make_byte_level_step(false, false).value());
  steps.push_back(make_digits_step(false).value());
  std::vector<Piece> out;
  pre_tokenize(steps,
               "a\xC2\xBD"
               "1",
               true, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].text, "a\xC2");
  EXPECT_EQ(out[1].text,
            "\xBD"
            "1");
}

TEST(Pipeline, ZeroWidthSplit) {
  // SuperBPE's lookahead matches only empty strings; each one is a cut, as in Hugging Face.
  std::vector<PreTokenizerStep> steps;
  steps.push_back(
      make_split_step(R"((?=(\d{3})+(?!\d)))", false, SplitBehavior::Isolated, false).value());
  std::vector<Piece> out;
  pre_tokenize(steps, "x1234567 123456", true, &out);
  std::vector<std::string> texts;
  for (const Piece& p : out) texts.push_back(p.text);
  EXPECT_EQ(texts, (std::vector<std::string>{"x1", "234", "567 ", "123", "456"}));
}

TEST(Pipeline, NestedClassesFlattened) {
  // Oniguruma unions a nested class into its parent; PCRE2 gets the flat class.
  EXPECT_EQ(flatten_nested_classes(R"( ?[^(\s|[.,!?])]+)"), R"( ?[^(\s|.,!?)]+)");
  EXPECT_EQ(flatten_nested_classes("[a[bc]d]"), "[abcd]");
  EXPECT_EQ(flatten_nested_classes("[[ab]]x"), "[ab]x");
  // Escapes, POSIX classes, a leading ']' and negated nested classes are kept.
  for (const char* same :
       {R"([\[\]]+)", "[[:alpha:]x]", "[]a]", "[^]a]", R"(\p{L}+|[\r\n])", "[a[^b]]"}) {
    EXPECT_EQ(flatten_nested_classes(same), same);
  }
  auto re = Regex::compile(" ?[^(\\s|[.,!?])]+");
  ASSERT_TRUE(re.ok()) << re.error().message;
  std::vector<std::pair<size_t, size_t>> m;
  re.value().find_all("ab, c[d]!", &m);
  EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{0, 2}, {3, 8}}));
}

}  // namespace
}  // namespace dspark::tok
