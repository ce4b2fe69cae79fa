// Test driver: runs scheduler steps with fabricated model outputs (no model) and checks the
// per-step limits and the BlockManager's invariants after every step.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "dspark/kv.h"
#include "dspark/sched.h"

namespace dspark::sched::testing {

// The token a fabricated model samples as request id's output number index.
inline int32_t fake_token(RequestId id, size_t index) {
  return static_cast<int32_t>(1000 + (id * 37 + int64_t(index) * 11) % 500);
}

inline kv::BlockManager make_kv(int32_t n_blocks, int32_t block_size, bool prefix_caching = true) {
  auto kv = kv::BlockManager::create(kv::KvConfig{block_size, n_blocks, prefix_caching});
  EXPECT_TRUE(kv.ok());
  return std::move(*kv);
}

inline Scheduler make_sched(kv::BlockManager& kv, int32_t budget, int32_t max_seqs,
                            std::optional<int32_t> chunk = std::nullopt) {
  auto s = Scheduler::create(SchedulerConfig{budget, max_seqs, chunk}, kv);
  EXPECT_TRUE(s.ok());
  return std::move(*s);
}

struct Driver {
  Driver(Scheduler& s, const kv::BlockManager& k) : sched(s), kv(k) {}

  Scheduler& sched;
  const kv::BlockManager& kv;
  std::map<RequestId, FinishedRequest> finished;
  std::set<RequestId> stop_at;  // next sample of these ends them with stop

  // One step: schedule, check limits, sample, update. Returns the plan for inspection.
  StepPlan step() {
    auto plan = sched.schedule();
    EXPECT_TRUE(plan.ok()) << plan.error().message;
    if (!plan.ok()) return {};
    const SchedulerConfig& c = sched.config();
    int32_t total = 0;
    std::set<RequestId> ids;
    std::vector<SampledToken> sampled;
    for (const ScheduledRequest& r : plan->requests) {
      EXPECT_GT(r.n_tokens, 0);
      EXPECT_EQ(size_t(r.n_tokens), r.tokens.size());
      if (c.long_prefill_chunk && r.prefill) {
        EXPECT_LE(r.n_tokens, *c.long_prefill_chunk);
      }
      if (!r.prefill) {
        EXPECT_EQ(r.n_tokens, 1);
      }
      EXPECT_TRUE(ids.insert(r.id).second) << "request scheduled twice";
      total += r.n_tokens;
      auto info = sched.info(r.id);
      if (r.samples && info.ok()) {
        const size_t index = info->output.size();
        sampled.push_back({r.id, fake_token(r.id, index), stop_at.erase(r.id) != 0});
      }
    }
    EXPECT_EQ(total, plan->n_tokens);
    EXPECT_LE(total, c.max_num_batched_tokens);
    EXPECT_LE(ids.size(), size_t(c.max_num_seqs));
    EXPECT_LE(sched.stats().n_running, c.max_num_seqs);
    for (const FinishedRequest& f : plan->finished) finished[f.id] = f;
    if (!plan->requests.empty()) {
      auto done = sched.update(*plan, sampled);
      EXPECT_TRUE(done.ok()) << done.error().message;
      if (done.ok()) {
        for (FinishedRequest& f : *done) finished[f.id] = std::move(f);
      }
    }
    Status inv = kv.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv.message();
    return std::move(*plan);
  }

  // Steps until no request is live (or max_steps, which fails the test).
  void run(int max_steps = 10000) {
    for (int i = 0; i < max_steps && sched.has_unfinished(); ++i) step();
    EXPECT_FALSE(sched.has_unfinished()) << "requests left after " << max_steps << " steps";
  }
};

// Output a request gets from the fabricated model when it runs to max_new_tokens.
inline std::vector<int32_t> expected_output(RequestId id, int32_t max_new_tokens) {
  std::vector<int32_t> out;
  for (int32_t i = 0; i < max_new_tokens; ++i) out.push_back(fake_token(id, size_t(i)));
  return out;
}

inline std::vector<int32_t> prompt_of(int32_t n, int32_t seed) {
  std::vector<int32_t> p;
  for (int32_t i = 0; i < n; ++i) p.push_back((seed * 101 + i * 7) % 900);
  return p;
}

}  // namespace dspark::sched::testing
