// Byte-level BPE on tiny hand-made vocabularies: merge order, pre-tokenization, caching.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_util.h"

namespace dspark::tok {
namespace {

using testing::build;
using testing::byte_level_spec;
using testing::id_of_bytes;

std::vector<int32_t> ids_of(const Tokenizer& t, std::initializer_list<const char*> pieces) {
  std::vector<int32_t> ids;
  for (const char* p : pieces) ids.push_back(id_of_bytes(t, p));
  return ids;
}

TEST(Bpe, LowestRankMergesFirst) {
  auto bc_first = build(byte_level_spec({{"b", "c"}, {"a", "b"}}));
  auto ab_first = build(byte_level_spec({{"a", "b"}, {"b", "c"}}));
  ASSERT_TRUE(bc_first && ab_first);
  EXPECT_EQ(bc_first->encode("abc", false, false), ids_of(*bc_first, {"a", "bc"}));
  EXPECT_EQ(ab_first->encode("abc", false, false), ids_of(*ab_first, {"ab", "c"}));
}

TEST(Bpe, EqualRankMergesLeftmostFirst) {
  auto t = build(byte_level_spec({{"a", "a"}, {"aa", "aa"}}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("aaa", false, false), ids_of(*t, {"aa", "a"}));
  EXPECT_EQ(t->encode("aaaa", false, false), ids_of(*t, {"aaaa"}));
  EXPECT_EQ(t->encode("aaaaa", false, false), ids_of(*t, {"aaaa", "a"}));
}

TEST(Bpe, Gpt2PreTokenizerSplitsWords) {
  auto t = build(byte_level_spec({{"h", "e"}, {" ", "t"}, {"l", "l"}, {" t", "he"}, {"t", "he"}}));
  ASSERT_TRUE(t);
  // "the" | " hello" | " the" | "'s" | " 42" | "  " | " x"
  EXPECT_EQ(t->encode("the hello the's 42   x", false, false),
            ids_of(*t, {"the", " ", "he", "ll", "o", " the", "'", "s", " ", "4", "2", " ", " ", " ",
                        "x"}));
  // Decoding gives the bytes back.
  const std::string text = "the hello the's 42   x";
  EXPECT_EQ(t->decode(t->encode(text, false, false), true), text);
}

TEST(Bpe, EveryByteIsEncodable) {
  auto t = build(byte_level_spec({}));
  ASSERT_TRUE(t);
  std::string all;
  for (int b = 1; b < 256; ++b) all.push_back(static_cast<char>(b));
  // Invalid UTF-8 is replaced by U+FFFD before tokenizing, like Hugging Face's lossy decoding.
  const std::string valid = "a\xC3\xA9\xF0\x9F\x98\x80\t\r\n\x01";
  EXPECT_EQ(t->decode(t->encode(valid, false, false), true), valid);
  EXPECT_EQ(t->decode(t->encode("x\xFFy", false, false), true), "x\xEF\xBF\xBDy");
  EXPECT_FALSE(t->encode(all, false, false).empty());
}

TEST(Bpe, CachedResultsStayCorrect) {
  auto t = build(byte_level_spec({{"a", "b"}}));
  ASSERT_TRUE(t);
  const auto first = t->encode("ab ab ab", false, false);
  EXPECT_EQ(first, t->encode("ab ab ab", false, false));
  EXPECT_EQ(first, ids_of(*t, {"ab", " ", "ab", " ", "ab"}));  // "ab", " ab", " ab"
}

TEST(Bpe, ConcurrentEncodesAgree) {
  auto t = build(byte_level_spec({{"a", "b"}, {"b", "c"}, {" ", "a"}, {" a", "b"}}));
  ASSERT_TRUE(t);
  std::vector<std::string> texts;
  for (int i = 0; i < 8; ++i)
    texts.push_back(std::string(i + 1, 'a') + " abc cab " + std::to_string(i));
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(t->encode(s, false, false));
  auto fresh = build(byte_level_spec({{"a", "b"}, {"b", "c"}, {" ", "a"}, {" a", "b"}}));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 200; ++rep) {
        const size_t i = static_cast<size_t>(rep + w) % texts.size();
        if (fresh->encode(texts[i], false, false) != want[i]) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Bpe, IgnoreMergesTakesWholeWords) {
  auto spec = byte_level_spec({{"a", "b"}, {"b", "c"}});
  spec.tokens.push_back(bytes_to_byte_level("abc"));  // in the vocab, not reachable by merges
  spec.in_model.push_back(true);
  spec.bpe.ignore_merges = true;
  auto t = build(spec);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("abc", false, false), ids_of(*t, {"abc"}));
  EXPECT_EQ(t->encode("abcc", false, false), ids_of(*t, {"ab", "c", "c"}));
}

TEST(Bpe, BadMergeIsAnError) {
  auto spec = byte_level_spec({});
  spec.merges.emplace_back("x", "y");  // "xy" is not in the vocabulary
  auto t = build_tokenizer(std::move(spec));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("merge 'x y'"), std::string::npos);
}

TEST(Bpe, OutOfRangeIdsAreErrors) {
  auto spec = byte_level_spec({});
  spec.eos_id = 100000;
  EXPECT_FALSE(build_tokenizer(spec).ok());
  spec.eos_id = -1;
  spec.prefix_ids = {-5};
  EXPECT_FALSE(build_tokenizer(spec).ok());
}

TEST(Bpe, TokenQueries) {
  auto t = build(byte_level_spec({{"a", "b"}}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->vocab_size(), 257);
  EXPECT_EQ(t->kind(), TokenizerKind::ByteLevelBpe);
  EXPECT_EQ(t->token_id("ab"), 256);
  EXPECT_EQ(t->token_id("\xC4\xA0"), ' ');  // "Ġ" is byte 32
  EXPECT_EQ(t->token_id("nope"), -1);
  EXPECT_EQ(t->token_bytes(' ', false), " ");
  EXPECT_EQ(t->token_bytes(-1, true), "");
  EXPECT_EQ(t->token_bytes(1000, true), "");
}

}  // namespace
}  // namespace dspark::tok
