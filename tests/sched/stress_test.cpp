// Randomized stress: many requests with shared prefixes, random arrivals, stops and aborts over a
// tiny KV pool; KV invariants after every step and nothing held once no request is live.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "dspark/sched.h"
#include "sched/sched_driver.h"

namespace dspark::sched {
namespace {

using testing::Driver;
using testing::make_kv;

// Adds the run's preemptions and prefix-hit tokens to totals, so the caller can check that the
// workloads exercised both.
void stress(uint32_t seed, bool prefix_caching, std::optional<int32_t> chunk, int64_t& n_preempt,
            int64_t& n_hit) {
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
    for (int k = pick(0, 2); k > 0 && next_id < 200; --k, ++next_id) {
      // Shared prefixes: a few prompt families, so the prefix cache gets hits.
      std::vector<int32_t> prompt;
      const int family = pick(0, 3);
      const int len = pick(1, 14);
      for (int i = 0; i < len; ++i) prompt.push_back(i < 8 ? family * 50 + i : pick(0, 999));
      const int32_t max_new = pick(1, 10);
      const bool fits = int64_t(prompt.size()) + max_new - 1 <= capacity;
      EXPECT_EQ(s->add_request(next_id, prompt, max_new).ok(), fits);
      if (fits) wanted[next_id] = max_new;
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
  n_preempt += s->stats().n_preemptions;
  n_hit += s->stats().n_prefix_hit_tokens;
  EXPECT_EQ(kv.n_requests(), 0);
  EXPECT_EQ(kv.n_available_blocks(), n_blocks);
  Status inv = kv.check_invariants();
  EXPECT_TRUE(inv.ok()) << inv.message();
}

TEST(SchedulerStress, RandomWorkloads) {
  int64_t n_preempt = 0, n_hit = 0;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    stress(seed, seed % 3 != 0, seed % 2 == 0 ? std::optional<int32_t>(3) : std::nullopt, n_preempt,
           n_hit);
  }
  EXPECT_GT(n_preempt, 0);
  EXPECT_GT(n_hit, 0);
  std::printf("stress: %lld preemptions, %lld prefix-hit tokens\n", (long long)n_preempt,
              (long long)n_hit);
}

}  // namespace
}  // namespace dspark::sched
