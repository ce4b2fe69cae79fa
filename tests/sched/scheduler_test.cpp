// Scheduler behaviour driven by fabricated model outputs: admission, chunked prefill, prefix
// hits, preemption, stop and error paths.
#include <gtest/gtest.h>

#include "dspark/sched.h"
#include "sched/sched_driver.h"

namespace dspark::sched {
namespace {

using testing::Driver;
using testing::expected_output;
using testing::make_kv;
using testing::make_sched;
using testing::prompt_of;

TEST(Scheduler, RejectsBadConfigAndRequests) {
  auto kv = make_kv(8, 4);
  EXPECT_FALSE(Scheduler::create(SchedulerConfig{0, 4, {}}, kv).ok());
  EXPECT_FALSE(Scheduler::create(SchedulerConfig{8, 0, {}}, kv).ok());
  EXPECT_FALSE(Scheduler::create(SchedulerConfig{8, 4, 0}, kv).ok());
  Scheduler s = make_sched(kv, 8, 4);
  EXPECT_TRUE(s.add_request(1, {1, 2}, 3).ok());
  EXPECT_FALSE(s.add_request(1, {1, 2}, 3).ok());  // duplicate
  EXPECT_FALSE(s.add_request(2, {}, 3).ok());      // empty prompt
  EXPECT_FALSE(s.add_request(3, {1}, 0).ok());     // no output wanted
  EXPECT_FALSE(s.add_request(4, {-1}, 1).ok());    // bad token
  // 8 blocks of 4, one kept spare for copy-on-write: 28 tokens at most.
  EXPECT_TRUE(s.add_request(5, prompt_of(20, 5), 9).ok());
  EXPECT_FALSE(s.add_request(6, prompt_of(20, 6), 10).ok());
  EXPECT_EQ(s.stats().n_waiting, 2);
}

TEST(Scheduler, AdmitsInArrivalOrderUpToMaxNumSeqs) {
  auto kv = make_kv(64, 4);
  Scheduler s = make_sched(kv, 100, 2);
  for (RequestId id : {7, 3, 5}) ASSERT_TRUE(s.add_request(id, prompt_of(5, int32_t(id)), 2).ok());
  Driver d{s, kv};
  StepPlan p = d.step();
  ASSERT_EQ(p.requests.size(), 2u);
  EXPECT_EQ(p.requests[0].id, 7);
  EXPECT_EQ(p.requests[1].id, 3);
  EXPECT_TRUE(p.requests[0].prefill);
  EXPECT_EQ(p.requests[0].n_tokens, 5);
  EXPECT_TRUE(p.requests[0].samples);
  EXPECT_EQ(s.info(5)->state, RequestState::kWaiting);
  p = d.step();  // decodes of 7 and 3, which then reach max_new_tokens
  ASSERT_EQ(p.requests.size(), 2u);
  EXPECT_FALSE(p.requests[0].prefill);
  EXPECT_EQ(p.requests[0].first_position, 5);
  EXPECT_EQ(p.requests[0].tokens[0], testing::fake_token(7, 0));
  EXPECT_EQ(d.finished.size(), 2u);
  p = d.step();
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].id, 5);
  d.run();
  for (RequestId id : {7, 3, 5}) {
    EXPECT_EQ(d.finished[id].reason, FinishReason::kLength);
    EXPECT_EQ(d.finished[id].output, expected_output(id, 2));
  }
  EXPECT_EQ(kv.n_requests(), 0);
}

TEST(Scheduler, ChunkedPrefillSharesStepsWithDecodes) {
  auto kv = make_kv(64, 4);
  Scheduler s = make_sched(kv, 8, 4);
  ASSERT_TRUE(s.add_request(1, prompt_of(3, 1), 10).ok());
  Driver d{s, kv};
  d.step();  // 1 prefilled, now decoding
  const std::vector<int32_t> long_prompt = prompt_of(20, 2);
  ASSERT_TRUE(s.add_request(2, long_prompt, 2).ok());
  int32_t next = 0;
  for (int i = 0; i < 3; ++i) {
    StepPlan p = d.step();
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_FALSE(p.requests[0].prefill);
    EXPECT_EQ(p.requests[0].n_tokens, 1);
    const ScheduledRequest& chunk = p.requests[1];
    EXPECT_TRUE(chunk.prefill);
    EXPECT_EQ(chunk.first_position, next);
    EXPECT_EQ(chunk.n_tokens, std::min(7, 20 - next));
    EXPECT_EQ(chunk.tokens, std::vector<int32_t>(long_prompt.begin() + next,
                                                 long_prompt.begin() + next + chunk.n_tokens));
    EXPECT_EQ(chunk.samples, next + chunk.n_tokens == 20);
    next += chunk.n_tokens;
  }
  EXPECT_EQ(next, 20);
  d.run();
  EXPECT_EQ(d.finished[1].output, expected_output(1, 10));
  EXPECT_EQ(d.finished[2].output, expected_output(2, 2));
}

TEST(Scheduler, LongPrefillChunkLetsPromptsShareAStep) {
  auto kv = make_kv(64, 4);
  Scheduler s = make_sched(kv, 16, 4, 5);
  ASSERT_TRUE(s.add_request(1, prompt_of(12, 1), 1).ok());
  ASSERT_TRUE(s.add_request(2, prompt_of(12, 2), 1).ok());
  ASSERT_TRUE(s.add_request(3, prompt_of(12, 3), 1).ok());
  Driver d{s, kv};
  StepPlan p = d.step();
  ASSERT_EQ(p.requests.size(), 3u);
  EXPECT_EQ(p.requests[0].n_tokens, 5);
  EXPECT_EQ(p.requests[1].n_tokens, 5);
  EXPECT_EQ(p.requests[2].n_tokens, 5);  // budget 16 would allow 6, the chunk cap says 5
  d.run();
  EXPECT_EQ(d.finished.size(), 3u);
}

TEST(Scheduler, PrefixCacheHitsSkipComputedTokens) {
  auto kv = make_kv(64, 4);
  Scheduler s = make_sched(kv, 64, 4);
  const std::vector<int32_t> prompt = prompt_of(10, 9);
  ASSERT_TRUE(s.add_request(1, prompt, 2).ok());
  Driver d{s, kv};
  d.run();
  ASSERT_TRUE(s.add_request(2, prompt, 2).ok());
  StepPlan p = d.step();
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].first_position, 8);  // two full blocks of 4 served by the cache
  EXPECT_EQ(p.requests[0].n_tokens, 2);
  EXPECT_EQ(s.stats().n_prefix_hit_tokens, 8);
  d.run();
  EXPECT_EQ(d.finished[2].output, expected_output(2, 2));

  // A fully cached, block-aligned prompt recomputes only its last token into a copied block.
  const std::vector<int32_t> aligned = prompt_of(8, 4);
  ASSERT_TRUE(s.add_request(3, aligned, 1).ok());
  d.run();
  ASSERT_TRUE(s.add_request(4, aligned, 1).ok());
  p = d.step();
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].first_position, 7);
  EXPECT_EQ(p.requests[0].n_tokens, 1);
  EXPECT_EQ(p.copies.size(), 1u);
}

TEST(Scheduler, PreemptsNewestAndResumesItFirst) {
  // 7 blocks of 4 tokens: two requests of 4 prompt + 16 new tokens cannot both run to the end.
  auto kv = make_kv(7, 4, /*prefix_caching=*/false);
  Scheduler s = make_sched(kv, 64, 4);
  ASSERT_TRUE(s.add_request(1, prompt_of(4, 1), 16).ok());
  ASSERT_TRUE(s.add_request(2, prompt_of(4, 2), 16).ok());
  Driver d{s, kv};
  StepPlan p;
  for (int i = 0; i < 100 && p.preempted.empty(); ++i) p = d.step();
  ASSERT_EQ(p.preempted, std::vector<RequestId>{2});
  EXPECT_EQ(s.info(2)->state, RequestState::kPreempted);
  EXPECT_EQ(s.info(2)->n_computed, 0);
  EXPECT_EQ(s.stats().n_preemptions, 1);
  ASSERT_TRUE(s.add_request(3, prompt_of(4, 3), 2).ok());  // newer arrival waits behind 2
  bool resumed_2 = false;
  while (s.has_unfinished()) {
    p = d.step();
    for (const ScheduledRequest& r : p.requests) {
      if (r.id == 2 && r.prefill) {
        resumed_2 = true;
        EXPECT_EQ(r.first_position, 0);  // recomputed from scratch, generated tokens included
        EXPECT_GT(r.tokens.size(), 4u);
      }
      if (r.id == 3) {
        EXPECT_TRUE(resumed_2) << "newer request ran before the preempted one";
      }
    }
  }
  EXPECT_TRUE(resumed_2);
  for (RequestId id : {1, 2}) EXPECT_EQ(d.finished[id].output, expected_output(id, 16));
  EXPECT_EQ(d.finished[3].output, expected_output(3, 2));
  EXPECT_EQ(kv.n_available_blocks(), 7);
}

TEST(Scheduler, TinyPoolRunsEveryRequestToCompletion) {
  auto kv = make_kv(6, 2);
  Scheduler s = make_sched(kv, 6, 8, 3);
  for (RequestId id = 0; id < 12; ++id) {
    ASSERT_TRUE(
        s.add_request(id, prompt_of(1 + int32_t(id % 4), int32_t(id % 3)), 3 + int32_t(id % 5))
            .ok());
  }
  Driver d{s, kv};
  d.run();
  EXPECT_GT(s.stats().n_preemptions, 0);
  for (RequestId id = 0; id < 12; ++id) {
    EXPECT_EQ(d.finished[id].reason, FinishReason::kLength);
    EXPECT_EQ(d.finished[id].output, expected_output(id, 3 + int32_t(id % 5)));
  }
  EXPECT_TRUE(kv.check_invariants().ok());
  EXPECT_EQ(kv.n_available_blocks(), 6);
}

TEST(Scheduler, StopFlagFinishesEarly) {
  auto kv = make_kv(16, 4);
  Scheduler s = make_sched(kv, 16, 4);
  ASSERT_TRUE(s.add_request(1, prompt_of(3, 1), 10).ok());
  Driver d{s, kv};
  d.step();
  d.stop_at.insert(1);
  d.step();
  ASSERT_EQ(d.finished.count(1), 1u);
  EXPECT_EQ(d.finished[1].reason, FinishReason::kStop);
  EXPECT_EQ(d.finished[1].output, expected_output(1, 2));
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_EQ(kv.n_requests(), 0);
}

TEST(Scheduler, ProtocolErrorsChangeNothing) {
  auto kv = make_kv(16, 4);
  Scheduler s = make_sched(kv, 16, 4);
  ASSERT_TRUE(s.add_request(1, prompt_of(3, 1), 3).ok());
  auto plan = s.schedule();
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(s.schedule().ok());  // previous step not committed
  const SampledToken wrong[] = {{9, 5, false}};
  EXPECT_FALSE(s.update(*plan, wrong).ok());
  EXPECT_FALSE(s.update(*plan, {}).ok());  // request 1 samples: its token is missing
  const SampledToken twice[] = {{1, 5, false}, {1, 6, false}};
  EXPECT_FALSE(s.update(*plan, twice).ok());
  const SampledToken negative[] = {{1, -5, false}};
  EXPECT_FALSE(s.update(*plan, negative).ok());
  EXPECT_EQ(s.info(1)->n_computed, 0);
  const SampledToken right[] = {{1, 5, false}};
  ASSERT_TRUE(s.update(*plan, right).ok());
  EXPECT_FALSE(s.update(*plan, right).ok());  // already committed
  EXPECT_EQ(s.info(1)->output, std::vector<int32_t>{5});
  EXPECT_EQ(s.info(1)->n_computed, 3);
  EXPECT_FALSE(s.abort(42).ok());
}

TEST(Scheduler, RequestThatCannotFitEvenAloneFinishesWithError) {
  // Another user of the pool holds most blocks, so the request fits the pool but never the free
  // part of it: with nothing of the scheduler's running, waiting would never end.
  auto kv = make_kv(8, 4);
  ASSERT_TRUE(kv.add_request(100, prompt_of(24, 7)).ok());
  Scheduler s = make_sched(kv, 16, 4);
  ASSERT_TRUE(s.add_request(1, prompt_of(12, 1), 2).ok());
  auto plan = s.schedule();
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->requests.empty());
  ASSERT_EQ(plan->finished.size(), 1u);
  EXPECT_EQ(plan->finished[0].reason, FinishReason::kError);
  EXPECT_FALSE(plan->finished[0].message.empty());
  EXPECT_FALSE(s.has_unfinished());
  EXPECT_TRUE(s.schedule().ok());  // an empty plan needs no update()
}

}  // namespace
}  // namespace dspark::sched
