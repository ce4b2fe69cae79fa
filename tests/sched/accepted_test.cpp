// Speculative steps through the scheduler: accepted drafts whose KV the engine committed with
// keep_path count as computed and join the output before the sampled token; mismatches between
// the accepted tokens and the KV are refused without change.
#include <gtest/gtest.h>

#include "dspark/sched.h"
#include "sched/sched_driver.h"

namespace dspark::sched {
namespace {

using testing::make_kv;
using testing::prompt_of;

// A request prefilled and at its first decode, with the plan of that decode step.
struct AtDecode {
  kv::BlockManager kv = make_kv(16, 4);
  Scheduler s = *Scheduler::create(SchedulerConfig{64, 4, {}}, kv);
  StepPlan decode;

  explicit AtDecode(int32_t max_tokens) {
    EXPECT_TRUE(s.add_request(1, prompt_of(6, 1), max_tokens).ok());
    StepPlan prefill = *s.schedule();
    const SampledToken first{1, 500, false, {}};
    EXPECT_TRUE(s.update(prefill, std::span(&first, 1)).ok());
    decode = *s.schedule();
  }
};

TEST(SchedulerAccepted, AcceptedDraftsCountAsComputedAndJoinTheOutput) {
  AtDecode a(10);
  ASSERT_EQ(a.decode.requests.size(), 1u);
  EXPECT_EQ(a.decode.requests[0].first_position, 6);
  // Three drafts verified after the anchor; the first two accepted.
  auto slots = a.kv.alloc_scratch(1, 3);
  ASSERT_TRUE(slots.ok());
  const std::vector<int32_t> accepted = {501, 502};
  ASSERT_TRUE(a.kv.keep_path(1, std::span(*slots).first(2), accepted).ok());
  const SampledToken t{1, 503, false, accepted};
  auto done = a.s.update(a.decode, std::span(&t, 1));
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_TRUE(done->empty());
  auto info = a.s.info(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->output, (std::vector<int32_t>{500, 501, 502, 503}));
  EXPECT_EQ(info->n_computed, 9);  // prompt, anchor and both accepted drafts
  EXPECT_EQ(*a.kv.n_computed(1), 9);
  // The next step's input is the sampled token at position 9.
  StepPlan next = *a.s.schedule();
  ASSERT_EQ(next.requests.size(), 1u);
  EXPECT_EQ(next.requests[0].first_position, 9);
  EXPECT_EQ(next.requests[0].tokens, std::vector<int32_t>{503});
  EXPECT_TRUE(a.kv.check_invariants().ok());
}

TEST(SchedulerAccepted, FinishesAtMaxTokensCountingAcceptedDrafts) {
  AtDecode a(4);
  auto slots = a.kv.alloc_scratch(1, 2);
  ASSERT_TRUE(slots.ok());
  const std::vector<int32_t> accepted = {501, 502};
  ASSERT_TRUE(a.kv.keep_path(1, *slots, accepted).ok());
  const SampledToken t{1, 503, false, accepted};
  auto done = a.s.update(a.decode, std::span(&t, 1));
  ASSERT_TRUE(done.ok()) << done.error().message;
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].reason, FinishReason::kLength);
  EXPECT_EQ((*done)[0].output, (std::vector<int32_t>{500, 501, 502, 503}));
  EXPECT_EQ(a.kv.n_requests(), 0);
  EXPECT_TRUE(a.kv.check_invariants().ok());
}

TEST(SchedulerAccepted, RefusesAcceptedTokensWithoutCommittedKv) {
  AtDecode a(10);
  // Claims two accepted drafts but the KV holds none of them.
  const SampledToken t{1, 503, false, {501, 502}};
  auto done = a.s.update(a.decode, std::span(&t, 1));
  EXPECT_FALSE(done.ok());
  const SampledToken negative{1, 503, false, {-4}};
  EXPECT_FALSE(a.s.update(a.decode, std::span(&negative, 1)).ok());
  // Nothing changed: the honest update still works.
  const SampledToken plain{1, 503, false, {}};
  ASSERT_TRUE(a.s.update(a.decode, std::span(&plain, 1)).ok());
  EXPECT_EQ(a.s.info(1)->output, (std::vector<int32_t>{500, 503}));
}

}  // namespace
}  // namespace dspark::sched
