// attention against the double-precision reference (GQA; plans with paged context, extra slots,
// causal, tree and block masks, a token with no keys), its batch invariance, and the fp16 K/V
// store, on every ISA path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "attention_test_util.h"
#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::available_isas;
using testing::BatchSpec;
using testing::IsaScope;
using testing::MaskKind;
using testing::random_floats;

struct AttentionCase {
  int64_t n_heads, n_kv_heads, head_dim;
  BatchSpec batch;
  AttentionPlan plan;
  std::vector<float> q;
  std::vector<uint16_t> k, v;

  int64_t n_tok() const { return plan.n_tok(); }
  AttentionArgs args(float* out) const {
    AttentionArgs a;
    a.n_tok = plan.n_tok();
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.head_dim = head_dim;
    a.scale = 1.0f / std::sqrt(float(head_dim));
    a.q = q.data();
    a.k_cache = k.data();
    a.v_cache = v.data();
    a.plan = &plan;
    a.out = out;
    return a;
  }
};

// Random q, K and V for the batch's tokens and KV pool.
AttentionCase make_case(BatchSpec batch, int64_t n_heads, int64_t n_kv, int64_t hd, uint32_t seed) {
  AttentionCase c{n_heads, n_kv, hd, std::move(batch), {}, {}, {}, {}};
  c.plan = testing::make_plan(c.batch);
  c.q = random_floats(c.n_tok() * n_heads * hd, seed, -2.0f, 2.0f);
  const auto kf = random_floats(c.batch.n_slots * n_kv * hd, seed + 1, -2.0f, 2.0f);
  const auto vf = random_floats(c.batch.n_slots * n_kv * hd, seed + 2);
  for (float f : kf) c.k.push_back(f32_to_f16(f));
  for (float f : vf) c.v.push_back(f32_to_f16(f));
  return c;
}

// One sequence without context whose extra slots are `keys`, one token that sees nothing in
// the batch: the token's keys are exactly `keys`, in order.
BatchSpec key_list_batch(const std::vector<int32_t>& keys, int64_t n_slots) {
  BatchSpec b;
  b.n_slots = n_slots;
  b.seqs.push_back(testing::BatchSeq{{}, 0, keys});
  b.seq = {0};
  b.slots = {0};
  b.in_batch = {{}};
  return b;
}

TEST(Attention, MatchesReference) {
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    ThreadPool pool(2);
    uint32_t seed = 1;
    for (MaskKind kind : {MaskKind::Causal, MaskKind::Tree, MaskKind::Block}) {
      for (auto [n_heads, n_kv, hd] :
           {std::tuple{9, 3, 64}, std::tuple{4, 4, 40}, std::tuple{14, 2, 64},
            std::tuple{12, 2, 128}, std::tuple{2, 1, 256}, std::tuple{6, 2, 80}}) {
        seed += 10;
        const auto c = make_case(testing::random_batch(7, kind, seed), n_heads, n_kv, hd, seed);
        std::vector<float> out(c.n_tok() * n_heads * hd), ref(out.size());
        attention(c.args(out.data()), pool);
        attention_reference(c.args(ref.data()));
        for (size_t i = 0; i < out.size(); ++i) {
          ASSERT_NEAR(out[i], ref[i], 2e-5) << testing::isa_label(isa) << " element " << i;
        }
        if (kind != MaskKind::Tree) continue;
        // Token 1 has no keys: zeros.
        ASSERT_EQ(c.plan.n_keys(1), 0);
        for (int64_t i = 0; i < n_heads * hd; ++i) EXPECT_EQ(out[n_heads * hd + i], 0.0f);
      }
    }
  }
}

// Grouped-query mapping: head h reads kv head h / (n_heads / n_kv_heads).
TEST(Attention, GqaHeadMapping) {
  // One key; the output of every head is then exactly its kv head's V row.
  BatchSpec one;
  one.n_slots = 12;
  one.seqs.push_back(testing::BatchSeq{});
  one.seq = {0};
  one.slots = {7};
  const auto c = make_case(one, 6, 2, 16, 50);
  std::vector<float> out(6 * 16);
  ThreadPool pool(1);
  attention(c.args(out.data()), pool);
  for (int64_t h = 0; h < 6; ++h) {
    const int64_t kvh = h / 3;
    for (int64_t d = 0; d < 16; ++d) {
      EXPECT_NEAR(out[h * 16 + d], f16_to_f32(c.v[(7 * 2 + kvh) * 16 + d]), 1e-6);
    }
  }
}

TEST(Attention, BatchInvariant) {
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    ThreadPool pool1(1), pool2(2);
    for (MaskKind kind : {MaskKind::Causal, MaskKind::Tree}) {
      const auto c = make_case(testing::random_batch(6, kind, 99), 9, 3, 64, 99);
      std::vector<float> all(c.n_tok() * 9 * 64);
      attention(c.args(all.data()), pool2);
      for (int64_t t = 0; t < c.n_tok(); ++t) {
        // The same token alone, with its own key list.
        AttentionCase one = c;
        one.batch = key_list_batch(testing::expanded_keys(c.batch, t), c.batch.n_slots);
        one.plan = testing::make_plan(one.batch);
        one.q.assign(c.q.begin() + t * 9 * 64, c.q.begin() + (t + 1) * 9 * 64);
        std::vector<float> out(9 * 64);
        attention(one.args(out.data()), pool1);
        EXPECT_EQ(0, std::memcmp(out.data(), all.data() + t * 9 * 64, out.size() * sizeof(float)))
            << testing::isa_label(isa) << " token " << t;
      }
    }
  }
}

TEST(Attention, InvalidHeadsFillNaN) {
  // 5 heads do not split over 2 kv heads.
  const auto c = make_case(testing::random_batch(2, MaskKind::Causal, 7), 5, 2, 16, 7);
  std::vector<float> out(2 * 5 * 16, 0.0f);
  ThreadPool pool(1);
  attention(c.args(out.data()), pool);
  for (float v : out) EXPECT_TRUE(std::isnan(v));
}

TEST(StoreKv, MatchesScalarConversion) {
  auto x = random_floats(3 * 37, 5, -70000.0f, 70000.0f);
  x[0] = 1e-7f;  // fp16 subnormal
  x[1] = -0.0f;
  x[2] = 65519.0f;  // rounds to the largest finite fp16
  x[3] = 65520.0f;  // rounds to infinity
  x[4] = 0.333333f;
  const std::vector<int32_t> slots = {4, 0, 2};
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    std::vector<uint16_t> cache(5 * 37, 0xFFFF);
    store_kv_f16(x.data(), slots.data(), 3, 37, cache.data());
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t i = 0; i < 37; ++i) {
        EXPECT_EQ(cache[slots[t] * 37 + i], f32_to_f16(x[t * 37 + i]))
            << testing::isa_label(isa) << " value " << x[t * 37 + i];
      }
    }
    for (int64_t i = 0; i < 37; ++i) EXPECT_EQ(cache[1 * 37 + i], 0xFFFF);  // untouched slot
  }
}

}  // namespace
}  // namespace dspark::cpu
