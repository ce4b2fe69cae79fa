#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

DraftTree propose_one(Drafter& d, RequestId id, const std::vector<int32_t>& tokens,
                      int32_t max_nodes, int32_t max_depth) {
  DraftInput in;
  in.id = id;
  in.tokens = tokens;
  in.n_prompt = static_cast<int32_t>(tokens.size());
  in.max_nodes = max_nodes;
  in.max_depth = max_depth;
  std::vector<DraftTree> out;
  const Status s = d.propose(std::span<const DraftInput>(&in, 1), out);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out.size(), 1u);
  const Status valid = out[0].check(1 << 20);
  EXPECT_TRUE(valid.ok()) << valid.message();
  return out[0];
}

TEST(NgramDrafter, ProposesContinuationOfLongestMatchAsChain) {
  auto d = make_ngram_drafter({.max_ngram = 4, .min_ngram = 1});
  EXPECT_STREQ(d->name(), "ngram");
  // Suffix [1 2 3] occurred at the start; [9 1 2 3] never did.
  const DraftTree t = propose_one(*d, 1, {1, 2, 3, 4, 9, 9, 1, 2, 3}, 8, 3);
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{4, 9, 9}));
  EXPECT_EQ(t.parent, (std::vector<int32_t>{-1, 0, 1}));
  EXPECT_EQ(t.q_index, (std::vector<int32_t>{-1, -1, -1}));
  // One occurrence of a 3-token match: 1 - 1 / (1 + 3 + 1).
  for (const float c : t.confidence) EXPECT_FLOAT_EQ(c, 0.8f);
}

TEST(NgramDrafter, BranchesWhereOccurrencesContinueDifferently) {
  auto d = make_ngram_drafter({.max_ngram = 3, .min_ngram = 1});
  const std::vector<int32_t> tokens = {5, 6, 7, 5, 6, 8, 5, 6};
  // [5 6] ends at 4 (then 8 5) and at 1 (then 7 5); the newer continuation comes first.
  const DraftTree t = propose_one(*d, 1, tokens, 8, 2);
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{8, 7, 5, 5}));
  EXPECT_EQ(t.parent, (std::vector<int32_t>{-1, -1, 0, 1}));
  // Half the occurrences each: 0.5 * (1 - 1 / (1 + 2 + 1)); below them the share is 1.
  EXPECT_EQ(t.confidence, (std::vector<float>{0.375f, 0.375f, 0.75f, 0.75f}));

  const DraftTree cut = propose_one(*d, 2, tokens, 3, 2);  // node budget keeps the best three
  EXPECT_EQ(cut.tokens, (std::vector<int32_t>{8, 7, 5}));
  EXPECT_EQ(cut.parent, (std::vector<int32_t>{-1, -1, 0}));
}

TEST(NgramDrafter, FrequentContinuationOutranksRecentOne) {
  auto d = make_ngram_drafter({.max_ngram = 2, .min_ngram = 1});
  // [1] was followed by 2 twice and by 3 once (most recently).
  const DraftTree t = propose_one(*d, 1, {1, 2, 1, 2, 1, 3, 1}, 8, 1);
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(t.parent, (std::vector<int32_t>{-1, -1}));
  EXPECT_FLOAT_EQ(t.confidence[0], 2.0f / 3.0f * 0.75f);
  EXPECT_FLOAT_EQ(t.confidence[1], 1.0f / 3.0f * (2.0f / 3.0f));
}

TEST(NgramDrafter, LongerMatchesAreMoreConfident) {
  auto d = make_ngram_drafter({.max_ngram = 4, .min_ngram = 1});
  const DraftTree long_match = propose_one(*d, 1, {1, 2, 3, 4, 5, 1, 2, 3, 4}, 1, 1);
  const DraftTree short_match = propose_one(*d, 2, {1, 5, 2, 3, 1}, 1, 1);
  ASSERT_EQ(long_match.size(), 1);
  ASSERT_EQ(short_match.size(), 1);
  EXPECT_EQ(long_match.tokens[0], 5);
  EXPECT_EQ(short_match.tokens[0], 5);
  EXPECT_GT(long_match.confidence[0], short_match.confidence[0]);
}

TEST(NgramDrafter, RespectsBudgetsAndMatchLimits) {
  auto d = make_ngram_drafter({.max_ngram = 3, .min_ngram = 2});
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 1, 2};
  EXPECT_EQ(propose_one(*d, 1, tokens, 0, 5).size(), 0);
  EXPECT_EQ(propose_one(*d, 1, tokens, 5, 0).size(), 0);
  EXPECT_EQ(propose_one(*d, 1, tokens, 2, 5).tokens, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(propose_one(*d, 1, tokens, 9, 5).tokens, (std::vector<int32_t>{3, 4, 5, 6, 1}));
  // The continuation stops at the newest token.
  EXPECT_EQ(propose_one(*d, 1, tokens, 9, 9).tokens, (std::vector<int32_t>{3, 4, 5, 6, 1, 2}));
  // min_ngram = 2: a single repeated token is not enough.
  EXPECT_EQ(propose_one(*d, 2, {7, 8, 9, 7}, 5, 5).size(), 0);
  EXPECT_EQ(propose_one(*d, 3, {4}, 5, 5).size(), 0);
  EXPECT_EQ(propose_one(*d, 4, {}, 5, 5).size(), 0);
}

TEST(NgramDrafter, HandlesSeveralRequestsPerCall) {
  auto d = make_ngram_drafter({});
  const std::vector<int32_t> a = {1, 2, 3, 1, 2};
  const std::vector<int32_t> b = {9, 8, 9};
  std::vector<DraftInput> in(2);
  in[0].id = 10;
  in[0].tokens = a;
  in[0].max_nodes = 4;
  in[0].max_depth = 4;
  in[1].id = 11;
  in[1].tokens = b;
  in[1].max_nodes = 4;
  in[1].max_depth = 4;
  std::vector<DraftTree> out(5);
  ASSERT_TRUE(d->propose(in, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(out[1].tokens, (std::vector<int32_t>{8, 9}));
}

TEST(NgramDrafter, ReleaseDropsTheIndex) {
  auto d = make_ngram_drafter({.max_ngram = 2, .min_ngram = 2});
  std::vector<int32_t> filler;
  for (int32_t i = 0; i < 100; ++i) filler.push_back(100 + i);
  std::vector<int32_t> first = {7, 8, 9};
  first.insert(first.end(), filler.begin(), filler.end());
  std::vector<int32_t> second = {1, 2, 3};
  second.insert(second.end(), filler.begin(), filler.end());
  second.insert(second.end(), {1, 2});
  EXPECT_EQ(propose_one(*d, 1, first, 4, 1).size(), 0);
  d->release(1);
  // Same id, new tokens that agree with the old ones near the end: only a fresh index sees the
  // [1 2] at the start.
  EXPECT_EQ(propose_one(*d, 1, second, 4, 1).tokens, (std::vector<int32_t>{3}));
  d->release(1);
  d->release(42);  // unknown ids are fine
}

TEST(NgramDrafter, IncrementalIndexMatchesFreshIndex) {
  auto incremental = make_ngram_drafter({.max_ngram = 3, .min_ngram = 1});
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> token(0, 4);
  std::vector<int32_t> tokens;
  for (int step = 0; step < 300; ++step) {
    // Several tokens at once sometimes (accepted drafts).
    const int grow = 1 + step % 3;
    for (int i = 0; i < grow; ++i) tokens.push_back(token(rng));
    const DraftTree got = propose_one(*incremental, 5, tokens, 6, 3);
    auto fresh = make_ngram_drafter({.max_ngram = 3, .min_ngram = 1});
    const DraftTree want = propose_one(*fresh, 5, tokens, 6, 3);
    ASSERT_EQ(got.tokens, want.tokens) << "step " << step;
    ASSERT_EQ(got.parent, want.parent) << "step " << step;
    ASSERT_EQ(got.confidence, want.confidence) << "step " << step;
  }
  // A shorter sequence under the same id (a reused id) is re-indexed from scratch.
  tokens.resize(10);
  auto fresh = make_ngram_drafter({.max_ngram = 3, .min_ngram = 1});
  EXPECT_EQ(propose_one(*incremental, 5, tokens, 6, 3).tokens,
            propose_one(*fresh, 5, tokens, 6, 3).tokens);
}

TEST(NgramDrafter, LongPromptIsIndexedOnceThenStepsAreCheap) {
  using Clock = std::chrono::steady_clock;
  auto d = make_ngram_drafter({});
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> token(0, 999);
  std::vector<int32_t> tokens(100000);
  for (int32_t& t : tokens) t = token(rng);
  const auto t0 = Clock::now();
  propose_one(*d, 1, tokens, 8, 5);
  const auto t1 = Clock::now();
  for (int step = 0; step < 1000; ++step) {
    tokens.push_back(token(rng));
    const DraftTree t = propose_one(*d, 1, tokens, 8, 5);
    ASSERT_LE(t.size(), 8);
  }
  const auto t2 = Clock::now();
  const double first = std::chrono::duration<double>(t1 - t0).count();
  const double steps = std::chrono::duration<double>(t2 - t1).count();
  std::printf("100k-token prompt: index %.3f s, 1000 steps %.3f s\n", first, steps);
  EXPECT_LT(first, 5.0);
  // A rescan per step would cost ~1000x the first call; incremental steps cost far less.
  EXPECT_LT(steps, 10.0 * first + 0.05);
}

}  // namespace
}  // namespace dspark::spec
