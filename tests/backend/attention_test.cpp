// attention against the double-precision reference (GQA, uneven key lists, empty lists), its
// batch invariance, and the fp16 K/V store, on every ISA path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::available_isas;
using testing::IsaScope;
using testing::random_floats;

struct AttentionCase {
  int64_t n_tok, n_heads, n_kv_heads, head_dim, n_slots;
  std::vector<float> q;
  std::vector<uint16_t> k, v;
  std::vector<int64_t> offsets;
  std::vector<int32_t> slots;

  AttentionArgs args(float* out) const {
    AttentionArgs a;
    a.n_tok = n_tok;
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.head_dim = head_dim;
    a.scale = 1.0f / std::sqrt(float(head_dim));
    a.q = q.data();
    a.k_cache = k.data();
    a.v_cache = v.data();
    a.key_offsets = offsets.data();
    a.key_slots = slots.data();
    a.out = out;
    return a;
  }
};

// Token t attends to a random-length list of random slots: empty for token 1, 600 keys for
// token 3 (several of the split kernel's 256-key chunks), up to 90 for the others.
AttentionCase make_case(int64_t n_tok, int64_t n_heads, int64_t n_kv, int64_t hd, uint32_t seed) {
  AttentionCase c{n_tok, n_heads, n_kv, hd, 700, {}, {}, {}, {}, {}};
  c.q = random_floats(n_tok * n_heads * hd, seed, -2.0f, 2.0f);
  const auto kf = random_floats(c.n_slots * n_kv * hd, seed + 1, -2.0f, 2.0f);
  const auto vf = random_floats(c.n_slots * n_kv * hd, seed + 2);
  for (float f : kf) c.k.push_back(f32_to_f16(f));
  for (float f : vf) c.v.push_back(f32_to_f16(f));
  std::mt19937 rng(seed + 3);
  c.offsets.push_back(0);
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t len = t == 1 ? 0 : t == 3 ? 600 : 1 + int64_t(rng() % 90);
    for (int64_t j = 0; j < len; ++j) c.slots.push_back(int32_t(rng() % c.n_slots));
    c.offsets.push_back(int64_t(c.slots.size()));
  }
  return c;
}

TEST(Attention, MatchesReference) {
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    ThreadPool pool(2);
    uint32_t seed = 1;
    for (auto [n_heads, n_kv, hd] :
         {std::tuple{9, 3, 64}, std::tuple{4, 4, 40}, std::tuple{14, 2, 64}, std::tuple{12, 2, 128},
          std::tuple{2, 1, 256}, std::tuple{6, 2, 80}}) {
      const auto c = make_case(5, n_heads, n_kv, hd, seed += 10);
      std::vector<float> out(c.n_tok * n_heads * hd), ref(out.size());
      attention(c.args(out.data()), pool);
      attention_reference(c.args(ref.data()));
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_NEAR(out[i], ref[i], 2e-5) << testing::isa_label(isa) << " element " << i;
      }
      // Token 1 has no keys: zeros.
      for (int64_t i = 0; i < n_heads * hd; ++i) EXPECT_EQ(out[n_heads * hd + i], 0.0f);
    }
  }
}

// Grouped-query mapping: head h reads kv head h / (n_heads / n_kv_heads).
TEST(Attention, GqaHeadMapping) {
  auto c = make_case(1, 6, 2, 16, 50);
  // One key; the output of every head is then exactly its kv head's V row.
  c.slots = {7};
  c.offsets = {0, 1};
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
    const auto c = make_case(6, 9, 3, 64, 99);
    std::vector<float> all(c.n_tok * 9 * 64);
    attention(c.args(all.data()), pool2);
    for (int64_t t = 0; t < c.n_tok; ++t) {
      // The same token alone, with its own key list.
      AttentionCase one = c;
      one.n_tok = 1;
      one.q.assign(c.q.begin() + t * 9 * 64, c.q.begin() + (t + 1) * 9 * 64);
      one.slots.assign(c.slots.begin() + c.offsets[t], c.slots.begin() + c.offsets[t + 1]);
      one.offsets = {0, int64_t(one.slots.size())};
      std::vector<float> out(9 * 64);
      attention(one.args(out.data()), pool1);
      EXPECT_EQ(0, std::memcmp(out.data(), all.data() + t * 9 * 64, out.size() * sizeof(float)))
          << testing::isa_label(isa) << " token " << t;
    }
  }
}

TEST(Attention, InvalidHeadsFillNaN) {
  auto c = make_case(2, 5, 2, 16, 7);  // 5 heads do not split over 2 kv heads
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
