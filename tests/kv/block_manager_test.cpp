#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "dspark/kv.h"

namespace dspark::kv {
namespace {

BlockManager make(int32_t block_size, int32_t n_blocks, bool caching = true) {
  auto m = BlockManager::create(KvConfig{block_size, n_blocks, caching});
  EXPECT_TRUE(m.ok()) << m.error().message;
  return std::move(*m);
}

std::vector<int32_t> table(const BlockManager& m, RequestId id) {
  auto t = m.block_table(id);
  EXPECT_TRUE(t.ok()) << t.error().message;
  return t.ok() ? *t : std::vector<int32_t>{};
}

void expect_ok(const BlockManager& m) {
  Status s = m.check_invariants();
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(KvBudget, BlocksFromBytes) {
  auto n = blocks_for_budget(1000, 100);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 10);
  auto n2 = blocks_for_budget(1099, 100);
  ASSERT_TRUE(n2.ok());
  EXPECT_EQ(*n2, 10);
  EXPECT_FALSE(blocks_for_budget(1000, 0).ok());
  EXPECT_FALSE(blocks_for_budget(50, 100).ok());
  EXPECT_FALSE(blocks_for_budget(uint64_t{1} << 40, 1).ok());
}

TEST(KvPool, RejectsBadSizesAndBadIds) {
  EXPECT_FALSE(BlockPool::create(0, 16).ok());
  EXPECT_FALSE(BlockPool::create(4, 0).ok());
  EXPECT_FALSE(BlockManager::create(KvConfig{0, 4, true}).ok());
  auto pool = BlockPool::create(2, 4);
  ASSERT_TRUE(pool.ok());
  EXPECT_FALSE(pool->acquire(-1).ok());
  EXPECT_FALSE(pool->acquire(2).ok());
  EXPECT_FALSE(pool->acquire(0).ok());  // free
  EXPECT_FALSE(pool->release(0).ok());  // unreferenced
  EXPECT_FALSE(pool->release(7).ok());
  EXPECT_TRUE(pool->check_invariants().ok());
}

TEST(KvPool, AllocateUntilExhaustedThenRelease) {
  auto pool = BlockPool::create(3, 4);
  ASSERT_TRUE(pool.ok());
  for (int32_t i = 0; i < 3; ++i) {
    auto b = pool->allocate();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*b, i);
    EXPECT_EQ(pool->ref_count(*b), 1);
  }
  auto none = pool->allocate();
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("out of blocks"), std::string::npos);
  ASSERT_TRUE(pool->acquire(1).ok());
  EXPECT_EQ(pool->ref_count(1), 2);
  ASSERT_TRUE(pool->release(1).ok());
  ASSERT_TRUE(pool->release(1).ok());
  EXPECT_EQ(pool->n_free(), 1);
  EXPECT_TRUE(pool->check_invariants().ok());
}

TEST(KvPool, CacheComparesContentNotJustHash) {
  auto pool = BlockPool::create(4, 2);
  ASSERT_TRUE(pool.ok());
  const std::vector<int32_t> a = {1, 2}, b = {1, 3};
  EXPECT_EQ(hash_block(kRootHash, a), hash_block(kRootHash, a));
  EXPECT_NE(hash_block(kRootHash, a), hash_block(kRootHash, b));
  EXPECT_NE(hash_block(kRootHash, a), hash_block(hash_block(kRootHash, a), a));
  EXPECT_FALSE(pool->publish(0, 42, kRootHash, a));  // free blocks cannot be cached
  auto x = pool->allocate();
  auto y = pool->allocate();
  ASSERT_TRUE(x.ok() && y.ok());
  ASSERT_TRUE(pool->publish(*x, 42, kRootHash, a));
  EXPECT_FALSE(pool->publish(*x, 43, kRootHash, a));  // already cached
  EXPECT_FALSE(pool->publish(*y, 42, kRootHash, b));  // hash taken (a forced collision)
  EXPECT_EQ(pool->lookup(42, kRootHash, a), std::optional<int32_t>(*x));
  EXPECT_EQ(pool->lookup(42, kRootHash, b), std::nullopt);  // same hash, other tokens
  EXPECT_EQ(pool->lookup(42, 7, a), std::nullopt);          // same hash, other parent
  EXPECT_EQ(pool->lookup(41, kRootHash, a), std::nullopt);
  ASSERT_TRUE(pool->release(*x).ok());
  ASSERT_TRUE(pool->release(*y).ok());
  EXPECT_EQ(pool->n_evictable(), 1);
  EXPECT_EQ(pool->n_free(), 3);
  EXPECT_TRUE(pool->check_invariants().ok());
}

TEST(KvManager, AllocatesAppendsAndFrees) {
  BlockManager m = make(4, 8);
  std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  auto r = m.add_request(7, prompt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->n_hit_tokens, 0);
  EXPECT_FALSE(r->copy.has_value());
  EXPECT_EQ(table(m, 7).size(), 2u);
  EXPECT_EQ(m.n_available_blocks(), 6);
  auto needed = m.blocks_needed(7, 3);
  ASSERT_TRUE(needed.ok());
  EXPECT_EQ(*needed, 1);  // 6 + 3 = 9 tokens -> 3 blocks
  ASSERT_TRUE(m.append(7, std::vector<int32_t>{7, 8, 9}).ok());
  std::vector<int32_t> t = table(m, 7);
  ASSERT_EQ(t.size(), 3u);
  auto s = m.slot(7, 8);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, int64_t{t[2]} * 4);
  EXPECT_FALSE(m.slot(7, 9).ok());
  EXPECT_FALSE(m.slot(7, -1).ok());
  expect_ok(m);
  ASSERT_TRUE(m.free_request(7).ok());
  EXPECT_EQ(m.n_available_blocks(), 8);
  EXPECT_EQ(m.n_requests(), 0);
  expect_ok(m);
}

TEST(KvManager, BadRequestsAreErrors) {
  BlockManager m = make(4, 8);
  ASSERT_TRUE(m.add_request(1, std::vector<int32_t>{1, 2}).ok());
  EXPECT_FALSE(m.add_request(1, std::vector<int32_t>{3}).ok());
  EXPECT_FALSE(m.append(2, std::vector<int32_t>{1}).ok());
  EXPECT_FALSE(m.free_request(2).ok());
  EXPECT_FALSE(m.blocks_needed(2, 1).ok());
  EXPECT_FALSE(m.blocks_needed(1, -1).ok());
  EXPECT_FALSE(m.alloc_scratch(1, -2).ok());
  EXPECT_FALSE(m.alloc_scratch(1, std::numeric_limits<int32_t>::max()).ok());
  EXPECT_FALSE(m.mark_computed(1, 3).ok());  // beyond n_tokens
  ASSERT_TRUE(m.mark_computed(1, 2).ok());
  EXPECT_FALSE(m.mark_computed(1, 1).ok());  // decreasing
  expect_ok(m);
}

TEST(KvManager, ExhaustionLeavesStateUnchanged) {
  BlockManager m = make(2, 3);
  ASSERT_TRUE(m.add_request(1, std::vector<int32_t>{1, 2, 3}).ok());
  EXPECT_FALSE(m.can_add_request(std::vector<int32_t>{4, 5, 6}));
  auto r = m.add_request(2, std::vector<int32_t>{4, 5, 6});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs 2 blocks"), std::string::npos);
  EXPECT_FALSE(m.has_request(2));
  auto can = m.can_append(1, 4);
  ASSERT_TRUE(can.ok());
  EXPECT_FALSE(*can);
  EXPECT_FALSE(m.append(1, std::vector<int32_t>{4, 5, 6, 7}).ok());
  EXPECT_EQ(*m.n_tokens(1), 3);
  EXPECT_EQ(table(m, 1).size(), 2u);
  EXPECT_FALSE(m.alloc_scratch(1, 4).ok());
  EXPECT_EQ(*m.n_scratch(1), 0);
  EXPECT_EQ(m.n_available_blocks(), 1);
  expect_ok(m);
}

TEST(KvPrefix, SharesComputedFullBlocksOnly) {
  BlockManager m = make(4, 16);
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  ASSERT_TRUE(m.add_request(1, a).ok());
  // Not computed yet: nothing to share.
  EXPECT_EQ(m.add_request(2, a)->n_hit_tokens, 0);
  ASSERT_TRUE(m.free_request(2).ok());
  ASSERT_TRUE(m.mark_computed(1, 10).ok());

  auto r = m.add_request(3, a);  // same 10 tokens: 2 full blocks hit, partial third not shared
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_hit_tokens, 8);
  EXPECT_FALSE(r->copy.has_value());
  std::vector<int32_t> t1 = table(m, 1), t3 = table(m, 3);
  ASSERT_EQ(t3.size(), 3u);
  EXPECT_EQ(t3[0], t1[0]);
  EXPECT_EQ(t3[1], t1[1]);
  EXPECT_NE(t3[2], t1[2]);
  EXPECT_EQ(m.pool().ref_count(t1[0]), 2);
  EXPECT_EQ(m.pool().ref_count(t1[2]), 1);

  std::vector<int32_t> b = {1, 2, 3, 4, 5, 6, 0, 8, 9};  // diverges in the second block
  auto r4 = m.add_request(4, b);
  ASSERT_TRUE(r4.ok());
  EXPECT_EQ(r4->n_hit_tokens, 4);
  EXPECT_EQ(table(m, 4)[0], t1[0]);
  EXPECT_EQ(m.pool().ref_count(t1[0]), 3);
  EXPECT_EQ(m.n_prefix_hit_tokens(), 12);
  EXPECT_EQ(m.n_prompt_tokens(), 39);
  expect_ok(m);

  // Finished requests leave their computed full blocks cached, refcount 0.
  for (RequestId id : {1, 3, 4}) ASSERT_TRUE(m.free_request(id).ok());
  EXPECT_TRUE(m.pool().is_cached(t1[0]));
  EXPECT_TRUE(m.pool().is_cached(t1[1]));
  EXPECT_FALSE(m.pool().is_cached(t1[2]));
  EXPECT_EQ(m.pool().ref_count(t1[0]), 0);
  EXPECT_EQ(m.pool().n_evictable(), 2);
  expect_ok(m);
  EXPECT_EQ(m.add_request(5, a)->n_hit_tokens, 8);  // revived from the cache
  EXPECT_EQ(m.pool().ref_count(t1[0]), 1);
  expect_ok(m);
}

TEST(KvPrefix, FullyCachedPromptCopiesItsLastBlock) {
  BlockManager m = make(4, 8);
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(m.add_request(1, a).ok());
  ASSERT_TRUE(m.mark_computed(1, 8).ok());
  std::vector<int32_t> t1 = table(m, 1);
  EXPECT_EQ(m.blocks_needed_for_prompt(a), 1);
  auto r = m.add_request(2, a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_hit_tokens, 7);  // the last token is recomputed for its logits
  ASSERT_TRUE(r->copy.has_value());
  std::vector<int32_t> t2 = table(m, 2);
  EXPECT_EQ(t2[0], t1[0]);
  EXPECT_EQ(r->copy->from_block, t1[1]);
  EXPECT_EQ(r->copy->to_block, t2[1]);
  EXPECT_NE(t2[1], t1[1]);
  EXPECT_EQ(m.pool().ref_count(t1[1]), 1);
  EXPECT_EQ(m.pool().ref_count(t2[1]), 1);
  expect_ok(m);
  ASSERT_TRUE(m.mark_computed(2, 8).ok());
  EXPECT_FALSE(m.pool().is_cached(t2[1]));  // the copy does not replace the cached original
  ASSERT_TRUE(m.free_request(1).ok());
  ASSERT_TRUE(m.free_request(2).ok());
  EXPECT_EQ(m.pool().n_free(), 6);
  EXPECT_EQ(m.pool().n_evictable(), 2);
  expect_ok(m);
}

TEST(KvPrefix, CopySourceIsNotEvictedForItsOwnCopy) {
  BlockManager m = make(2, 2);
  std::vector<int32_t> a = {1, 2, 3, 4};
  ASSERT_TRUE(m.add_request(1, a).ok());
  ASSERT_TRUE(m.mark_computed(1, 4).ok());
  ASSERT_TRUE(m.free_request(1).ok());
  EXPECT_EQ(m.pool().n_evictable(), 2);
  // Needs block 0 (revived), the copy source (held) and one new block: 3 > 2.
  EXPECT_FALSE(m.can_add_request(a));
  EXPECT_FALSE(m.add_request(2, a).ok());
  expect_ok(m);
}

TEST(KvPrefix, EvictsLeastRecentlyReleasedTailFirst) {
  BlockManager m = make(2, 4);
  ASSERT_TRUE(m.add_request(1, std::vector<int32_t>{1, 2, 3, 4}).ok());  // blocks 0, 1
  ASSERT_TRUE(m.mark_computed(1, 4).ok());
  ASSERT_TRUE(m.free_request(1).ok());
  EXPECT_EQ(m.pool().eviction_order(), (std::vector<int32_t>{1, 0}));
  ASSERT_TRUE(m.add_request(2, std::vector<int32_t>{5, 6}).ok());  // block 2
  ASSERT_TRUE(m.mark_computed(2, 2).ok());
  ASSERT_TRUE(m.free_request(2).ok());
  EXPECT_EQ(m.pool().eviction_order(), (std::vector<int32_t>{1, 0, 2}));

  // Two blocks: free block 3 first, then evicts block 1.
  ASSERT_TRUE(m.add_request(3, std::vector<int32_t>{7, 8, 9}).ok());
  EXPECT_EQ(table(m, 3), (std::vector<int32_t>{3, 1}));
  EXPECT_FALSE(m.pool().is_cached(1));
  EXPECT_EQ(m.pool().eviction_order(), (std::vector<int32_t>{0, 2}));
  ASSERT_TRUE(m.free_request(3).ok());

  // Block 0 still serves its prefix; using it moves it to the most recent end.
  auto r = m.add_request(4, std::vector<int32_t>{1, 2, 9});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_hit_tokens, 2);
  EXPECT_EQ(table(m, 4)[0], 0);
  ASSERT_TRUE(m.free_request(4).ok());
  EXPECT_EQ(m.pool().eviction_order(), (std::vector<int32_t>{2, 0}));
  expect_ok(m);
}

TEST(KvPrefix, SwitchedOff) {
  BlockManager m = make(4, 8, false);
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_TRUE(m.add_request(1, a).ok());
  ASSERT_TRUE(m.mark_computed(1, 9).ok());
  auto r = m.add_request(2, a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_hit_tokens, 0);
  EXPECT_FALSE(r->copy.has_value());
  for (int32_t b : table(m, 2)) EXPECT_EQ(m.pool().ref_count(b), 1);
  EXPECT_EQ(m.pool().n_free(), 2);
  ASSERT_TRUE(m.free_request(1).ok());
  ASSERT_TRUE(m.free_request(2).ok());
  EXPECT_EQ(m.pool().n_free(), 8);
  EXPECT_EQ(m.pool().n_evictable(), 0);
  EXPECT_EQ(m.n_prefix_hit_tokens(), 0);
  expect_ok(m);
}

TEST(KvScratch, KeepPathMovesAcceptedRowsAndFreesTheRest) {
  BlockManager m = make(4, 8);
  ASSERT_TRUE(m.add_request(1, std::vector<int32_t>{1, 2, 3, 4, 5, 6}).ok());
  auto slots = m.alloc_scratch(1, 5);  // positions 6..10
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 5u);
  std::vector<int32_t> t = table(m, 1);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ((*slots)[0], int64_t{t[1]} * 4 + 2);
  EXPECT_EQ((*slots)[2], int64_t{t[2]} * 4 + 0);
  EXPECT_EQ(*m.n_scratch(1), 5);
  EXPECT_FALSE(m.append(1, std::vector<int32_t>{9}).ok());  // scratch outstanding

  const std::vector<int64_t> s = *slots;
  EXPECT_FALSE(m.keep_path(1, std::vector<int64_t>{s[1]}, std::vector<int32_t>{}).ok());
  EXPECT_FALSE(m.keep_path(1, std::vector<int64_t>{s[3], s[1]}, std::vector<int32_t>{7, 8}).ok());
  EXPECT_FALSE(m.keep_path(1, std::vector<int64_t>{int64_t{t[0]} * 4}, std::vector<int32_t>{7})
                   .ok());  // committed, not scratch
  EXPECT_FALSE(m.keep_path(1, std::vector<int64_t>{-3}, std::vector<int32_t>{7}).ok());
  EXPECT_EQ(*m.n_scratch(1), 5);

  // Accept positions 7 and 9: they move to positions 6 and 7.
  auto copies = m.keep_path(1, std::vector<int64_t>{s[1], s[3]}, std::vector<int32_t>{70, 90});
  ASSERT_TRUE(copies.ok()) << copies.error().message;
  ASSERT_EQ(copies->size(), 2u);
  EXPECT_EQ((*copies)[0].from_slot, s[1]);
  EXPECT_EQ((*copies)[0].to_slot, s[0]);
  EXPECT_EQ((*copies)[1].from_slot, s[3]);
  EXPECT_EQ((*copies)[1].to_slot, s[1]);
  EXPECT_EQ(*m.n_tokens(1), 8);
  EXPECT_EQ(*m.n_scratch(1), 0);
  EXPECT_EQ(table(m, 1).size(), 2u);  // the third block went back
  EXPECT_EQ(m.n_available_blocks(), 6);
  expect_ok(m);

  // A path that starts at the first scratch slot needs no copy for it.
  auto slots2 = m.alloc_scratch(1, 2);
  ASSERT_TRUE(slots2.ok());
  auto copies2 = m.keep_path(1, std::vector<int64_t>{(*slots2)[0]}, std::vector<int32_t>{5});
  ASSERT_TRUE(copies2.ok());
  EXPECT_TRUE(copies2->empty());
  EXPECT_EQ(*m.n_tokens(1), 9);
  // Rejecting everything just frees the scratch.
  ASSERT_TRUE(m.alloc_scratch(1, 6).ok());
  auto none = m.keep_path(1, {}, {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(table(m, 1).size(), 3u);
  ASSERT_TRUE(m.free_request(1).ok());
  EXPECT_EQ(m.n_available_blocks(), 8);
  expect_ok(m);
}

}  // namespace
}  // namespace dspark::kv
