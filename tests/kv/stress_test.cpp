// Randomized operations against a fake KV storage: every slot holds a marker of the token prefix
// whose KV it caches, so a wrong share, a missed copy or a block reused while still held shows up
// as a wrong marker.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "dspark/kv.h"

namespace dspark::kv {
namespace {

constexpr int32_t kBlockSize = 4;
constexpr int32_t kBlocks = 48;

uint64_t next_marker(uint64_t prev, int32_t token) {
  return (prev ^ static_cast<uint64_t>(token + 1)) * 0x100000001b3ull + 0x51ed27;
}

struct Engine {
  struct Req {
    std::vector<int32_t> tokens;    // [n_tokens]
    std::vector<uint64_t> markers;  // [n_tokens] expected KV marker of each position
  };
  BlockManager m;
  std::vector<uint64_t> kv;  // [n_blocks * block_size] fake KV rows
  std::map<RequestId, Req> reqs;
  std::mt19937 rng;

  explicit Engine(bool caching, uint32_t seed)
      : m(std::move(*BlockManager::create(KvConfig{kBlockSize, kBlocks, caching}))),
        kv(size_t(kBlocks) * kBlockSize, 0),
        rng(seed) {}

  int rand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  int64_t slot(RequestId id, int32_t pos) {
    auto s = m.slot(id, pos);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? *s : 0;
  }

  void extend(Req& r, int32_t token) {
    r.markers.push_back(next_marker(r.markers.empty() ? 0 : r.markers.back(), token));
    r.tokens.push_back(token);
  }
  // Writes KV markers of positions [from, n_tokens) and tells the manager.
  void compute(RequestId id, int32_t from) {
    Req& r = reqs[id];
    for (int32_t p = from; p < int32_t(r.tokens.size()); ++p)
      kv[size_t(slot(id, p))] = r.markers[p];
    ASSERT_TRUE(m.mark_computed(id, int32_t(r.tokens.size())).ok());
  }
  void verify() {
    Status s = m.check_invariants();
    ASSERT_TRUE(s.ok()) << s.message();
    for (auto& [id, r] : reqs) {
      const int32_t n = *m.n_computed(id);
      for (int32_t p = 0; p < n; ++p) {
        ASSERT_EQ(kv[size_t(slot(id, p))], r.markers[size_t(p)])
            << "request " << id << " pos " << p;
      }
    }
  }
};

class KvStress : public ::testing::TestWithParam<bool> {};

TEST_P(KvStress, RandomOperationsKeepInvariants) {
  const bool caching = GetParam();
  Engine e(caching, caching ? 1234 : 4321);
  std::vector<std::vector<int32_t>> prefixes(4);
  for (size_t i = 0; i < prefixes.size(); ++i) {
    prefixes[i].resize(size_t(e.rand(0, 13)));
    for (int32_t& t : prefixes[i]) t = e.rand(0, 7);
  }
  std::map<std::string, int> counts;
  RequestId next_id = 0;
  for (int op = 0; op < 6000; ++op) {
    const int kind = e.rand(0, 9);
    std::vector<RequestId> ids;
    for (auto& [id, r] : e.reqs) ids.push_back(id);
    const RequestId pick = ids.empty() ? -1 : ids[size_t(e.rand(0, int(ids.size()) - 1))];
    if (kind <= 2 || ids.empty()) {
      std::vector<int32_t> prompt = prefixes[size_t(e.rand(0, 3))];
      for (int n = e.rand(0, 6); n > 0; --n) prompt.push_back(e.rand(0, 7));
      const bool can = e.m.can_add_request(prompt);
      const int32_t avail = e.m.n_available_blocks();
      auto r = e.m.add_request(next_id, prompt);
      ASSERT_EQ(r.ok(), can);
      if (!r.ok()) {
        ASSERT_EQ(e.m.n_available_blocks(), avail);
        ++counts["add_refused"];
      } else {
        Engine::Req& req = e.reqs[next_id];
        for (int32_t t : prompt) e.extend(req, t);
        if (r->copy) {
          ASSERT_TRUE(caching);
          for (int32_t o = 0; o < kBlockSize; ++o) {
            e.kv[size_t(r->copy->to_block * kBlockSize + o)] =
                e.kv[size_t(r->copy->from_block * kBlockSize + o)];
          }
          ++counts["cow"];
        }
        e.verify();  // hit positions must already hold the right KV
        e.compute(next_id, r->n_hit_tokens);
        ++counts[r->n_hit_tokens > 0 ? "add_hit" : "add"];
        ++next_id;
      }
    } else if (kind <= 4) {
      const int n = e.rand(1, 5);
      std::vector<int32_t> toks;
      for (int i = 0; i < n; ++i) toks.push_back(e.rand(0, 7));
      const bool can = *e.m.can_append(pick, n);
      ASSERT_EQ(e.m.append(pick, toks).ok(), can);
      if (can) {
        Engine::Req& req = e.reqs[pick];
        const int32_t from = int32_t(req.tokens.size());
        for (int32_t t : toks) e.extend(req, t);
        e.compute(pick, from);
        ++counts["append"];
      }
    } else if (kind <= 6) {
      const int n = e.rand(1, 7);
      if (!*e.m.can_append(pick, n)) {
        ASSERT_FALSE(e.m.alloc_scratch(pick, n).ok());
        continue;
      }
      auto slots = e.m.alloc_scratch(pick, n);
      ASSERT_TRUE(slots.ok());
      Engine::Req& req = e.reqs[pick];
      // Accepted path: increasing positions; each accepted node's KV is that of the committed
      // tokens plus the path so far. Rejected nodes hold junk.
      std::vector<int64_t> path;
      std::vector<int32_t> path_tokens;
      Engine::Req extended = req;
      for (int i = 0; i < n; ++i) {
        const int64_t s = (*slots)[size_t(i)];
        if (e.rand(0, 1) == 0) {
          const int32_t t = e.rand(0, 7);
          e.extend(extended, t);
          e.kv[size_t(s)] = extended.markers.back();
          path.push_back(s);
          path_tokens.push_back(t);
        } else {
          e.kv[size_t(s)] = 0xdeadbeef;
        }
      }
      auto copies = e.m.keep_path(pick, path, path_tokens);
      ASSERT_TRUE(copies.ok()) << copies.error().message;
      for (const SlotCopy& c : *copies) e.kv[size_t(c.to_slot)] = e.kv[size_t(c.from_slot)];
      req = extended;
      ASSERT_TRUE(e.m.mark_computed(pick, int32_t(req.tokens.size())).ok());
      ASSERT_EQ(*e.m.n_tokens(pick), int32_t(req.tokens.size()));
      ++counts["keep_path"];
    } else if (kind <= 8) {
      ASSERT_TRUE(e.m.free_request(pick).ok());
      e.reqs.erase(pick);
      ++counts["finish"];
    } else {
      // Abort mid-step: tokens appended but never computed, then the request goes away.
      const int n = e.rand(1, 3);
      if (*e.m.can_append(pick, n)) {
        ASSERT_TRUE(e.m.append(pick, std::vector<int32_t>(size_t(n), 1)).ok());
      }
      ASSERT_TRUE(e.m.free_request(pick).ok());
      e.reqs.erase(pick);
      ++counts["abort"];
    }
    e.verify();
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (auto& [id, r] : e.reqs) ASSERT_TRUE(e.m.free_request(id).ok());
  e.reqs.clear();
  e.verify();
  EXPECT_EQ(e.m.n_available_blocks(), kBlocks);
  EXPECT_EQ(e.m.pool().n_free() + e.m.pool().n_evictable(), kBlocks);
  for (const char* k : {"add", "append", "keep_path", "finish", "abort", "add_refused"}) {
    EXPECT_GT(counts[k], 0) << k;
  }
  if (caching) {
    EXPECT_GT(counts["add_hit"], 0);
    EXPECT_GT(counts["cow"], 0);
    EXPECT_GT(e.m.n_prefix_hit_tokens(), 0);
  } else {
    EXPECT_EQ(counts["add_hit"], 0);
    EXPECT_EQ(e.m.pool().n_evictable(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Caching, KvStress, ::testing::Bool());

}  // namespace
}  // namespace dspark::kv
