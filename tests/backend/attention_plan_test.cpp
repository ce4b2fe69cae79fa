// AttentionPlan: its layout, its page walk against the per-token key lists the model expanded
// before the plan (the oracle, attention_test_util.h), and attention through a plan bit for bit
// equal to attention over those expanded lists, on every ISA path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "attention_test_util.h"
#include "backend/cpu/attention.h"
#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::BatchSpec;
using testing::MaskKind;

TEST(AttentionPlan, Layout) {
  AttentionPlan p;
  p.reset(4);
  const std::vector<int32_t> table = {5, 2, 9, 7};
  p.add_sequence(table, 6, {});  // a partial second page
  const std::vector<int32_t> extra = {40};
  p.add_sequence(table, 9, extra);  // shares the table
  p.add_sequence({}, 0, {});
  const std::vector<int32_t> seq = {1, 0, 1, 2}, slots = {60, 61, 62, 63};
  p.set_tokens(seq, slots);
  EXPECT_EQ(p.page_indptr, (std::vector<int32_t>{0, 2, 5, 5}));
  EXPECT_EQ(p.page_ids, (std::vector<int32_t>{5, 2, 5, 2, 9}));
  EXPECT_EQ(p.n_past, (std::vector<int32_t>{6, 9, 0}));
  EXPECT_EQ(p.extra_indptr, (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(p.extra_slots, extra);
  EXPECT_EQ(p.token_indptr, (std::vector<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(p.token_slots, (std::vector<int32_t>{61, 60, 62, 63}));
  EXPECT_EQ(p.token_seq, seq);
  EXPECT_EQ(p.token_rank, (std::vector<int32_t>{0, 0, 1, 0}));
  EXPECT_TRUE(p.causal());
  EXPECT_EQ(p.n_keys(0), 11);  // 9 context + 1 extra + itself
  EXPECT_EQ(p.n_keys(1), 7);
  EXPECT_EQ(p.n_keys(2), 12);  // and token 0 before itself
  EXPECT_EQ(p.n_keys(3), 1);

  // A mask: token 2 sees token 0 and itself, token 0 itself, tokens 1 and 3 nothing in-batch.
  p.use_mask();
  p.allow(2, 0);
  p.allow(2, 2);
  p.allow(0, 0);
  EXPECT_EQ(p.mask_indptr, (std::vector<int64_t>{0, 1, 5, 6}));
  // Sequence 1's [2, 2] matrix starts at bit 1: (0, 0) is bit 1, (1, 0) bit 3, (1, 1) bit 4.
  EXPECT_EQ(p.mask_bits, (std::vector<uint8_t>{0x1A}));
  EXPECT_EQ(p.n_keys(0), 11);
  EXPECT_EQ(p.n_keys(1), 6);
  EXPECT_EQ(p.n_keys(2), 12);
  EXPECT_EQ(p.n_keys(3), 0);
  std::vector<int32_t> keys(12);
  resolve_keys(p, 2, 0, 12, keys.data());
  EXPECT_EQ(keys, (std::vector<int32_t>{20, 21, 22, 23, 8, 9, 10, 11, 36, 40, 60, 62}));
}

// Every token's keys, whole and in random pieces (as the 256-key chunks take them), are the
// oracle's list.
TEST(AttentionPlan, WalksTheExpandedKeyLists) {
  std::mt19937 rng(4);
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    for (MaskKind kind : {MaskKind::Causal, MaskKind::Tree, MaskKind::Block}) {
      const BatchSpec b = testing::random_batch(12, kind, seed);
      const AttentionPlan p = testing::make_plan(b);
      for (int64_t t = 0; t < b.n_tok(); ++t) {
        const std::vector<int32_t> want = testing::expanded_keys(b, t);
        const int64_t n = int64_t(want.size());
        ASSERT_EQ(p.n_keys(t), n) << "token " << t;
        std::vector<int32_t> got(want.size(), -1);
        for (int64_t j = 0; j < n;) {
          const int64_t piece = std::min<int64_t>(n - j, 1 + rng() % 300);
          resolve_keys(p, t, j, piece, got.data() + j);
          j += piece;
        }
        ASSERT_EQ(got, want) << "seed " << seed << " token " << t;
      }
    }
  }
}

// Attention of a batch through its plan equals, bit for bit, attention of each token alone
// over its expanded key list (one sequence whose extra slots are the list).
TEST(AttentionPlan, SameBitsAsExpandedKeyLists) {
  for (Isa isa : testing::available_isas()) {
    testing::IsaScope scope(isa);
    ThreadPool pool1(1), pool2(2);
    uint32_t seed = 100;
    for (auto [n_heads, n_kv, hd] : {std::tuple{14, 2, 64}, std::tuple{12, 2, 128},
                                     std::tuple{4, 4, 40}, std::tuple{6, 2, 80}}) {
      for (MaskKind kind : {MaskKind::Causal, MaskKind::Tree, MaskKind::Block}) {
        const BatchSpec b = testing::random_batch(9, kind, ++seed);
        const AttentionPlan plan = testing::make_plan(b);
        const int64_t row = n_heads * hd;
        const auto q = testing::random_floats(size_t(b.n_tok() * row), seed, -2.0f, 2.0f);
        std::vector<uint16_t> k, v;
        for (float f : testing::random_floats(size_t(b.n_slots * n_kv * hd), seed + 1, -2, 2)) {
          k.push_back(f32_to_f16(f));
        }
        for (float f : testing::random_floats(size_t(b.n_slots * n_kv * hd), seed + 2)) {
          v.push_back(f32_to_f16(f));
        }
        std::vector<float> all(size_t(b.n_tok() * row));
        attention(attention_args(plan, n_heads, n_kv, hd, q.data(), k.data(), v.data(), all.data()),
                  pool2);
        for (int64_t t = 0; t < b.n_tok(); ++t) {
          AttentionPlan one;
          one.reset(b.block_size);
          const std::vector<int32_t> keys = testing::expanded_keys(b, t);
          one.add_sequence({}, 0, keys);
          const std::vector<int32_t> seq = {0}, slot = {b.slots[size_t(t)]};
          one.set_tokens(seq, slot);
          one.use_mask();  // nothing in-batch: the token's keys are exactly the list
          std::vector<float> out(static_cast<size_t>(row));
          attention(attention_args(one, n_heads, n_kv, hd, q.data() + t * row, k.data(), v.data(),
                                   out.data()),
                    pool1);
          ASSERT_EQ(0, std::memcmp(out.data(), all.data() + t * row, out.size() * sizeof(float)))
              << testing::isa_label(isa) << " head_dim " << hd << " token " << t;
        }
      }
    }
  }
}

}  // namespace
}  // namespace dspark::cpu
