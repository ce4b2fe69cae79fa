// BlockManager::fork_request: shared full blocks, the copied partial block, hash chains carried
// on for the prefix cache, the error paths (no change), and the idle invariant after freeing.
#include <gtest/gtest.h>

#include <vector>

#include "dspark/kv.h"

namespace dspark::kv {
namespace {

BlockManager make(int32_t n_blocks, bool prefix_caching) {
  auto m = BlockManager::create(KvConfig{4, n_blocks, prefix_caching});
  EXPECT_TRUE(m.ok());
  return std::move(*m);
}

std::vector<int32_t> tokens(int32_t n, int32_t seed) {
  std::vector<int32_t> t;
  for (int32_t i = 0; i < n; ++i) t.push_back(seed * 100 + i);
  return t;
}

void expect_ok(const Status& s) {
  EXPECT_TRUE(s.ok()) << s.message();
}

class ForkTest : public ::testing::TestWithParam<bool> {};

TEST_P(ForkTest, SharesFullBlocksAndCopiesThePartialOne) {
  BlockManager m = make(16, GetParam());
  const std::vector<int32_t> prompt = tokens(10, 1);  // blocks [4, 4, 2]
  ASSERT_TRUE(m.add_request(1, prompt).ok());
  expect_ok(m.mark_computed(1, 10));
  const std::vector<int32_t> src = *m.block_table(1);
  ASSERT_EQ(src.size(), 3u);

  EXPECT_EQ(m.blocks_needed_for_fork(prompt, 9), 1);
  const int32_t before = m.n_available_blocks();
  auto forked = m.fork_request(2, 1, prompt, 9);
  ASSERT_TRUE(forked.ok()) << forked.error().message;
  EXPECT_EQ(forked->n_hit_tokens, 9);
  ASSERT_TRUE(forked->copy.has_value());
  EXPECT_EQ(forked->copy->from_block, src[2]);
  const std::vector<int32_t> table = *m.block_table(2);
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0], src[0]);
  EXPECT_EQ(table[1], src[1]);
  EXPECT_EQ(table[2], forked->copy->to_block);
  EXPECT_NE(table[2], src[2]);
  EXPECT_EQ(m.pool().ref_count(src[0]), 2);
  EXPECT_EQ(m.pool().ref_count(src[2]), 1);
  EXPECT_EQ(m.n_available_blocks(), before - 1);
  EXPECT_EQ(*m.n_computed(2), 9);
  EXPECT_EQ(*m.n_tokens(2), 10);
  EXPECT_EQ(m.n_forked_tokens(), 9);
  expect_ok(m.check_invariants());

  // The source going away leaves the fork its blocks; then the fork ends too.
  expect_ok(m.free_request(1));
  EXPECT_EQ(m.pool().ref_count(src[0]), 1);
  expect_ok(m.check_invariants());
  expect_ok(m.mark_computed(2, 10));
  expect_ok(m.free_request(2));
  expect_ok(m.check_invariants());
  EXPECT_EQ(m.n_available_blocks(), 16);
}

TEST_P(ForkTest, BlockAlignedShareNeedsNoCopy) {
  BlockManager m = make(16, GetParam());
  const std::vector<int32_t> prompt = tokens(9, 2);  // 8 shared tokens = 2 full blocks
  ASSERT_TRUE(m.add_request(1, prompt).ok());
  expect_ok(m.mark_computed(1, 9));
  EXPECT_EQ(m.blocks_needed_for_fork(prompt, 8), 1);
  auto forked = m.fork_request(2, 1, prompt, 8);
  ASSERT_TRUE(forked.ok()) << forked.error().message;
  EXPECT_FALSE(forked->copy.has_value());
  const std::vector<int32_t> src = *m.block_table(1), table = *m.block_table(2);
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0], src[0]);
  EXPECT_EQ(table[1], src[1]);
  EXPECT_NE(table[2], src[2]);
  expect_ok(m.check_invariants());
  expect_ok(m.free_request(2));
  expect_ok(m.free_request(1));
  expect_ok(m.check_invariants());
}

INSTANTIATE_TEST_SUITE_P(PrefixCaching, ForkTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "On" : "Off"; });

TEST(Fork, HashChainContinuesIntoThePrefixCache) {
  BlockManager m = make(32, true);
  const std::vector<int32_t> prompt = tokens(9, 3);
  ASSERT_TRUE(m.add_request(1, prompt).ok());
  expect_ok(m.mark_computed(1, 9));
  ASSERT_TRUE(m.fork_request(2, 1, prompt, 8).ok());
  // The fork's own continuation fills block 2 and publishes it chained on the shared blocks.
  std::vector<int32_t> seq = prompt;
  const std::vector<int32_t> more = {7001, 7002, 7003};
  seq.insert(seq.end(), more.begin(), more.end());
  expect_ok(m.append(2, more));
  expect_ok(m.mark_computed(2, 12));
  expect_ok(m.free_request(2));
  expect_ok(m.free_request(1));
  seq.push_back(7004);
  auto hit = m.add_request(3, seq);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  EXPECT_EQ(hit->n_hit_tokens, 12);
  expect_ok(m.free_request(3));
  expect_ok(m.check_invariants());
}

TEST(Fork, ErrorsLeaveEverythingUnchanged) {
  BlockManager m = make(6, false);
  const std::vector<int32_t> prompt = tokens(10, 4);
  ASSERT_TRUE(m.add_request(1, prompt).ok());
  expect_ok(m.mark_computed(1, 6));
  const int32_t available = m.n_available_blocks();
  std::vector<int32_t> other = prompt;
  other[2] += 1;
  EXPECT_FALSE(m.fork_request(1, 1, prompt, 5).ok());         // duplicate id
  EXPECT_FALSE(m.fork_request(2, 9, prompt, 5).ok());         // unknown source
  EXPECT_FALSE(m.fork_request(2, 1, prompt, 10).ok());        // nothing left to compute
  EXPECT_FALSE(m.fork_request(2, 1, prompt, -1).ok());        // negative share
  EXPECT_FALSE(m.fork_request(2, 1, prompt, 9).ok());         // KV not computed that far
  EXPECT_FALSE(m.fork_request(2, 1, other, 5).ok());          // other tokens
  EXPECT_FALSE(m.fork_request(2, 1, tokens(30, 4), 5).ok());  // too few blocks
  auto st = m.fork_request(2, 1, prompt, 9);
  EXPECT_NE(st.error().message.find("computed"), std::string::npos) << st.error().message;
  EXPECT_FALSE(m.has_request(2));
  EXPECT_EQ(m.n_available_blocks(), available);
  EXPECT_EQ(m.n_forked_tokens(), 0);
  expect_ok(m.check_invariants());
  // Within what is computed it works, and fills the pool exactly.
  auto ok = m.fork_request(2, 1, prompt, 6);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(m.n_available_blocks(), 1);
  expect_ok(m.check_invariants());
  expect_ok(m.free_request(1));
  expect_ok(m.free_request(2));
  expect_ok(m.check_invariants());
}

}  // namespace
}  // namespace dspark::kv
