// Randomized stress: many requests with shared prefixes, groups forking one prompt, random
// arrivals, stops and aborts over a tiny KV pool; KV invariants after every step and nothing held
// once no request is live.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "dspark/sched.h"
#include "sched/sched_driver.h"

namespace dspark::sched {
namespace {

using testing::Driver;
using testing::make_kv;

struct Totals {
  int64_t n_preempt = 0, n_hit = 0, n_forked = 0;
};

// Adds the run's preemptions, prefix-hit and forked tokens to totals, so the caller can check
// that the workloads exercised them all.
void stress(uint32_t seed, bool prefix_caching, std::optional<int32_t> chunk, Totals& totals) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int32_t block_size = pick(1, 4);
  const int32_t n_blocks = pick(8, 20);
  auto kv = make_kv(n_blocks, block_size, prefix_caching);
  auto s = Scheduler::create(SchedulerConfig{pick(1, 24), pick(1, 6), chunk}, kv);
  ASSERT_TRUE(s.ok());
  Driver d{*s, kv};
  std::map<RequestId, int32_t> wanted;  // max_new_tokens of accepted requests
  std::set<RequestId> aborted, stopped;
  RequestId next_id = 0;
  const int64_t capacity = int64_t(n_blocks - (prefix_caching ? 1 : 0)) * block_size;
  for (int step = 0; step < 3000 && (next_id < 200 || s->has_unfinished()); ++step) {
    for (int k = pick(0, 2); k > 0 && next_id < 200; --k) {
      // Shared prefixes: a few prompt families, so the prefix cache gets hits.
      std::vector<int32_t> prompt;
      const int family = pick(0, 3);
      const int len = pick(1, 14);
      for (int i = 0; i < len; ++i) prompt.push_back(i < 8 ? family * 50 + i : pick(0, 999));
      const int32_t max_new = pick(1, 10);
      const bool fits = int64_t(prompt.size()) + max_new - 1 <= capacity;
      // Sometimes a group of n completions of this prompt.
      const RequestId first = next_id;
      const int n = pick(0, 3) == 0 ? pick(2, 4) : 1;
      for (int i = 0; i < n; ++i, ++next_id) {
        const auto group = n > 1 ? std::optional<RequestId>(first) : std::nullopt;
        EXPECT_EQ(s->add_request(next_id, prompt, max_new, group).ok(), fits);
        if (fits) wanted[next_id] = max_new;
      }
    }
    if (pick(0, 9) == 0 && !wanted.empty()) {
      auto it = wanted.begin();
      std::advance(it, pick(0, int(wanted.size()) - 1));
      if (s->info(it->first).ok()) {
        ASSERT_TRUE(s->abort(it->first).ok());
        aborted.insert(it->first);
      }
    }
    if (pick(0, 19) == 0 && !wanted.empty()) {
      const RequestId id = std::next(wanted.begin(), pick(0, int(wanted.size()) - 1))->first;
      if (s->info(id).ok()) d.stop_at.insert(id);
    }
    d.step();
    const SchedulerStats st = s->stats();
    EXPECT_EQ(st.n_kv_blocks_used, n_blocks - kv.n_available_blocks());
    EXPECT_EQ(kv.n_requests(), st.n_running);
  }
  EXPECT_FALSE(s->has_unfinished());
  for (const auto& [id, max_new] : wanted) {
    if (aborted.count(id)) {
      EXPECT_EQ(d.finished.count(id), 0u);
      continue;
    }
    ASSERT_EQ(d.finished.count(id), 1u) << "request " << id << " never finished";
    const FinishedRequest& f = d.finished[id];
    EXPECT_NE(f.reason, FinishReason::kError) << f.message;
    const std::vector<int32_t> full = testing::expected_output(id, max_new);
    if (f.reason == FinishReason::kLength) {
      EXPECT_EQ(f.output, full);
    } else {
      ASSERT_EQ(f.reason, FinishReason::kStop);
      ASSERT_LE(f.output.size(), full.size());
      EXPECT_TRUE(std::equal(f.output.begin(), f.output.end(), full.begin()));
    }
  }
  totals.n_preempt += s->stats().n_preemptions;
  totals.n_hit += s->stats().n_prefix_hit_tokens;
  totals.n_forked += s->stats().n_forked_tokens;
  EXPECT_EQ(kv.n_requests(), 0);
  EXPECT_EQ(kv.n_available_blocks(), n_blocks);
  Status inv = kv.check_invariants();
  EXPECT_TRUE(inv.ok()) << inv.message();
}

TEST(SchedulerStress, RandomWorkloads) {
  Totals t;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    stress(seed, seed % 3 != 0, seed % 2 == 0 ? std::optional<int32_t>(3) : std::nullopt, t);
  }
  EXPECT_GT(t.n_preempt, 0);
  EXPECT_GT(t.n_hit, 0);
  EXPECT_GT(t.n_forked, 0);
  std::printf("stress: %lld preemptions, %lld prefix-hit tokens, %lld forked tokens\n",
              (long long)t.n_preempt, (long long)t.n_hit, (long long)t.n_forked);
}

}  // namespace
}  // namespace dspark::sched
