// SentencePiece-style BPE: score-derived merges, U+2581 spaces, byte fallback, leading space.
#include <gtest/gtest.h>

#include "test_util.h"

namespace dspark::tok {
namespace {

const std::string kMark = "\xE2\x96\x81";  // U+2581

// <unk> <s> </s>, the 256 byte tokens, then a few pieces with scores.
TokenizerSpec spm_spec() {
  TokenizerSpec spec;
  spec.kind = TokenizerKind::SentencePieceBpe;
  spec.tokens = {"<unk>", "<s>", "</s>"};
  spec.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    spec.tokens.push_back(buf);
    spec.scores.push_back(0);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {kMark, -3}, {"a", -4}, {"b", -5}, {kMark + "a", -1}, {"ab", -2}, {kMark + "ab", -0.5f}};
  for (const auto& [p, s] : pieces) {
    spec.tokens.push_back(p);
    spec.scores.push_back(s);
  }
  spec.in_model.assign(spec.tokens.size(), true);
  spec.merges_from_scores = true;
  spec.bpe.byte_fallback = true;
  spec.bpe.fuse_unk = true;
  spec.bpe.unk_id = 0;
  spec.added = {{0, "<unk>", true}, {1, "<s>", true}, {2, "</s>", true}};
  spec.normalizers = {{NormalizerStep::Kind::Prepend, kMark, ""},
                      {NormalizerStep::Kind::Replace, " ", kMark}};
  spec.decode.space_marker = kMark;
  spec.decode.byte_tokens = true;
  spec.decode.strip_leading_spaces = 1;
  spec.prefix_ids = {1};
  spec.bos_id = 1;
  spec.eos_id = 2;
  return spec;
}

TEST(Spm, ScoreDerivedMerges) {
  auto t = testing::build(spm_spec());
  ASSERT_TRUE(t);
  const int32_t mark_ab = t->token_id(kMark + "ab");
  const int32_t mark_a = t->token_id(kMark + "a");
  // "ab a" -> "▁ab▁a": the ▁a merge (score -1) comes first, then ▁a+b (from ▁ab's -0.5).
  EXPECT_EQ(t->encode("ab a", false, false), (std::vector<int32_t>{mark_ab, mark_a}));
  EXPECT_EQ(t->encode("ab a", true, false), (std::vector<int32_t>{1, mark_ab, mark_a}));
  EXPECT_EQ(t->kind(), TokenizerKind::SentencePieceBpe);
}

TEST(Spm, ByteFallbackAndDecode) {
  auto t = testing::build(spm_spec());
  ASSERT_TRUE(t);
  const int32_t mark_a = t->token_id(kMark + "a");
  const auto ids = t->encode("a\xC3\xA9", false, false);
  EXPECT_EQ(ids, (std::vector<int32_t>{mark_a, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->decode(ids, false), "a\xC3\xA9");  // leading space of ▁ stripped
  EXPECT_EQ(t->token_bytes(mark_a, false), " a");
  EXPECT_EQ(t->token_bytes(3 + 0x41, false), "A");
}

TEST(Spm, SpecialTokensAndSegments) {
  auto t = testing::build(spm_spec());
  ASSERT_TRUE(t);
  const int32_t mark_a = t->token_id(kMark + "a");
  // Each text segment after a special token gets its own ▁ prefix (Llama 2's normalizers).
  EXPECT_EQ(t->encode("<s>a</s>", false, true), (std::vector<int32_t>{1, mark_a, 2}));
  EXPECT_TRUE(t->is_special(1));
  EXPECT_FALSE(t->is_special(mark_a));
  EXPECT_EQ(t->decode({1, mark_a, 2}, false), "a");
  EXPECT_EQ(t->decode({1, mark_a, 2}, true), "<s> a</s>");
  EXPECT_EQ(t->stop_ids(), (std::vector<int32_t>{2}));
}

TEST(Spm, UnknownWithoutByteTokensFuses) {
  TokenizerSpec spec = spm_spec();
  spec.bpe.byte_fallback = false;
  auto t = testing::build(spec);
  ASSERT_TRUE(t);
  const int32_t mark = t->token_id(kMark);
  // "é€" has no pieces: the two unknown characters fuse into one <unk>.
  EXPECT_EQ(t->encode("\xC3\xA9\xE2\x82\xAC", false, false), (std::vector<int32_t>{mark, 0}));
}

TEST(Spm, WhitespaceRunsMergeByScore) {
  TokenizerSpec spec = spm_spec();
  for (const auto& [p, s] : std::vector<std::pair<std::string, float>>{
           {kMark + kMark, -0.1f}, {kMark + kMark + kMark + kMark, -0.2f}}) {
    spec.tokens.push_back(p);
    spec.scores.push_back(s);
    spec.in_model.push_back(true);
  }
  spec.normalizers = {{NormalizerStep::Kind::Replace, " ", kMark}};  // no prefix (Gemma)
  spec.decode.strip_leading_spaces = 0;
  auto t = testing::build(spec);
  ASSERT_TRUE(t);
  const int32_t two = t->token_id(kMark + kMark);
  const int32_t four = t->token_id(kMark + kMark + kMark + kMark);
  // ▁+▁ first (best score), left to right, then ▁▁+▁▁: 4002 spaces -> 1000 x ▁▁▁▁ + ▁▁, in
  // one BPE run over the whole text (no pre-tokenizer splits it).
  std::vector<int32_t> want(1000, four);
  want.push_back(two);
  const std::string run(4002, ' ');
  const auto ids = t->encode(run, false, false);
  EXPECT_EQ(ids, want);
  EXPECT_EQ(t->decode(ids, false), run);
  EXPECT_EQ(t->encode("a   b", false, false),
            (std::vector<int32_t>{t->token_id("a"), two, t->token_id(kMark), t->token_id("b")}));
}

TEST(Spm, RoundTrip) {
  auto t = testing::build(spm_spec());
  ASSERT_TRUE(t);
  for (const std::string text :
       {"ab a", "  leading and trailing  ", "b\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80",
        "tab\tnew\nline", "", "a"}) {
    EXPECT_EQ(t->decode(t->encode(text, true, false), false), text) << text;
  }
}

}  // namespace
}  // namespace dspark::tok
