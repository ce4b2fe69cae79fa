// GrammarMatcher: rollback restores the exact mask, forced tokens and strings, special tokens,
// bad calls that must fail cleanly, and lifetime (a matcher outlives its compiler).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "dspark/grammar.h"
#include "grammar_test_util.h"

namespace dspark {
namespace {

using namespace grammar_testing;

GrammarSpec compact(GrammarSpec spec) {
  spec.any_whitespace = false;
  return spec;
}

TEST(GrammarMatcherTest, RollbackRestoresTheExactMask) {
  TinyVocab tiny;
  GrammarCompiler compiler(tiny.grammar_vocab());
  auto m = matcher_for(compiler, GrammarSpec::json_schema(kPersonSchema));
  ASSERT_TRUE(m);
  std::vector<int32_t> ids = tiny.encode(kPersonDoc);
  // At every position: take a mask, accept up to 5 tokens, roll them back, compare.
  for (size_t i = 0; i < ids.size(); ++i) {
    std::vector<uint32_t> before = mask_of(*m);
    int k = 0;
    for (size_t j = i; j < ids.size() && k < 5; ++j, ++k) ASSERT_TRUE(m->accept(ids[j]));
    ASSERT_TRUE(m->rollback(k).ok());
    ASSERT_EQ(m->accepted(), static_cast<int>(i));
    ASSERT_EQ(mask_of(*m), before) << "after rolling back " << k << " tokens at " << i;
    ASSERT_TRUE(m->accept(ids[i]));
  }
  // Rolling back the EOS undoes the termination.
  ASSERT_TRUE(m->accept(tiny.eos));
  ASSERT_TRUE(m->is_terminated());
  ASSERT_TRUE(m->rollback(1).ok());
  EXPECT_FALSE(m->is_terminated());
  EXPECT_TRUE(allowed(mask_of(*m), tiny.eos));
}

TEST(GrammarMatcherTest, BadCallsFailCleanly) {
  TinyVocab tiny;
  GrammarCompiler compiler(tiny.grammar_vocab());
  auto m = matcher_for(compiler, GrammarSpec::json_object());
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->rollback(1).ok()) << "nothing accepted yet";
  EXPECT_FALSE(m->rollback(-1).ok());
  EXPECT_FALSE(m->accept(-1));
  EXPECT_FALSE(m->accept(static_cast<int32_t>(tiny.tokens.size())));
  std::vector<uint32_t> wrong(3);
  EXPECT_FALSE(m->fill_mask(wrong).ok());
  ASSERT_TRUE(m->accept(tiny.id("{")));
  EXPECT_FALSE(m->rollback(2).ok());
  EXPECT_EQ(m->accepted(), 1);
  m->reset();
  EXPECT_EQ(m->accepted(), 0);
  EXPECT_TRUE(allowed(mask_of(*m), tiny.id("{")));
}

TEST(GrammarMatcherTest, SpecialTokensAreNeverAllowed) {
  TinyVocab tiny;
  GrammarCompiler compiler(tiny.grammar_vocab());
  for (const GrammarSpec& spec :
       {GrammarSpec::json_object(), GrammarSpec::regex(".*"), GrammarSpec::json_schema("{}")}) {
    auto m = matcher_for(compiler, spec);
    ASSERT_TRUE(m);
    EXPECT_FALSE(allowed(mask_of(*m), tiny.start)) << spec.key();
    EXPECT_FALSE(m->accept(tiny.start)) << spec.key();
  }
  // A free regex allows every ordinary token and EOS, and still not the special one.
  auto m = matcher_for(compiler, GrammarSpec::regex("[\\s\\S]*"));
  ASSERT_TRUE(m);
  std::vector<uint32_t> mask = mask_of(*m);
  EXPECT_TRUE(allowed(mask, tiny.eos));
  EXPECT_TRUE(allowed(mask, tiny.id("a")));
  EXPECT_FALSE(allowed(mask, tiny.start));
}

TEST(GrammarMatcherTest, ForcedStringAtAKey) {
  TinyVocab tiny;
  GrammarCompiler compiler(tiny.grammar_vocab());
  auto m = matcher_for(compiler, compact(GrammarSpec::json_schema(kPersonSchema)));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->forced_string(), "{\"name\": \"");
  const std::vector<int32_t> ids = tiny.encode(R"({"name": "Ada")");
  ASSERT_EQ(walk(*m, ids), ids.size());
  EXPECT_EQ(m->forced_string(), ", \"age\": ");
  // Several tokens fit the forced text here ("," and ", \""), so no single token is forced.
  EXPECT_FALSE(m->forced_token().has_value());
  EXPECT_EQ(m->accepted(), static_cast<int>(ids.size())) << "forced_* do not move the matcher";
}

TEST(GrammarMatcherTest, ForcedTokensOnBytesAndEos) {
  TinyVocab bytes(/*merges=*/false);
  GrammarCompiler compiler(bytes.grammar_vocab());
  auto m = matcher_for(compiler, compact(GrammarSpec::json_schema(kPersonSchema)));
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->accept(bytes.id("{")));
  std::vector<uint32_t> before = mask_of(*m);
  // With one token per byte the forced text is a run of single allowed tokens.
  std::vector<int32_t> run = m->forced_tokens(100);
  EXPECT_EQ(run, bytes.encode("\"name\": \""));
  EXPECT_EQ(m->accepted(), 1) << "forced_tokens leaves the matcher where it was";
  EXPECT_EQ(mask_of(*m), before);
  EXPECT_EQ(m->forced_tokens(3), bytes.encode("\"na"));
  EXPECT_EQ(m->forced_token(), bytes.id("\""));
  // After a complete document (compact: no trailing whitespace) only EOS may follow.
  m->reset();
  std::vector<int32_t> ids = bytes.encode(kPersonDoc);
  ASSERT_EQ(walk(*m, ids), ids.size());
  EXPECT_EQ(m->forced_token(), bytes.eos);
  EXPECT_EQ(m->forced_tokens(4), std::vector<int32_t>{bytes.eos});
  EXPECT_FALSE(m->is_terminated());
}

TEST(GrammarMatcherTest, SingleTokenOfAMask) {
  std::vector<uint32_t> mask(3, 0);
  EXPECT_FALSE(grammar_single_token(mask, 70).has_value());
  mask[1] = 1u << 4;
  EXPECT_EQ(grammar_single_token(mask, 70), 36);
  mask[2] = 1u;
  EXPECT_FALSE(grammar_single_token(mask, 70).has_value());
  mask[2] = 0;
  mask[1] = 3u;
  EXPECT_FALSE(grammar_single_token(mask, 70).has_value());
}

TEST(GrammarMatcherTest, ApplyMaskToLogits) {
  std::vector<uint32_t> mask = {0x80000001u, 0x2u};  // tokens 0, 31, 33
  std::vector<float> logits(70, 1.0f);
  grammar_apply_mask(mask, logits);
  for (int i = 0; i < 70; ++i) {
    bool keep = i == 0 || i == 31 || i == 33;
    EXPECT_EQ(logits[i], keep ? 1.0f : -std::numeric_limits<float>::infinity()) << i;
  }
}

TEST(GrammarMatcherTest, MatcherOutlivesItsCompiler) {
  TinyVocab tiny;
  std::unique_ptr<GrammarMatcher> m;
  {
    GrammarCompiler compiler(tiny.grammar_vocab());
    m = matcher_for(compiler, GrammarSpec::choice({"yes", "no"}));
  }
  ASSERT_TRUE(m);
  ASSERT_EQ(walk(*m, tiny.encode("no")), 2u);
  EXPECT_TRUE(m->accept(tiny.eos));
}

TEST(GrammarMatcherTest, VocabularyErrors) {
  std::vector<std::string> tokens = {"a", "b", ""};
  std::vector<int32_t> eos = {2};
  EXPECT_TRUE(GrammarVocab::from_tokens(tokens, eos).ok());
  EXPECT_EQ(GrammarVocab::from_tokens(tokens, eos, 40).value()->mask_words(), 2);
  EXPECT_FALSE(GrammarVocab::from_tokens(tokens, {}).ok());
  std::vector<int32_t> bad = {3};
  EXPECT_FALSE(GrammarVocab::from_tokens(tokens, bad).ok());
  EXPECT_FALSE(GrammarVocab::from_tokens(tokens, eos, 2).ok());
  EXPECT_FALSE(GrammarVocab::from_tokens({}, eos).ok());
}

}  // namespace
}  // namespace dspark
