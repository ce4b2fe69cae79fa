// abort() in every request state frees everything, and a step in flight skips aborted requests.
#include <gtest/gtest.h>

#include "dspark/sched.h"
#include "sched/sched_driver.h"

namespace dspark::sched {
namespace {

using testing::Driver;
using testing::make_kv;
using testing::prompt_of;

void expect_all_free(const kv::BlockManager& kv) {
  EXPECT_EQ(kv.n_requests(), 0);
  EXPECT_EQ(kv.n_available_blocks(), kv.pool().n_blocks());
  Status inv = kv.check_invariants();
  EXPECT_TRUE(inv.ok()) << inv.message();
}

TEST(SchedulerAbort, Waiting) {
  auto kv = make_kv(16, 4);
  auto s = Scheduler::create(SchedulerConfig{16, 1, {}}, kv);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->add_request(1, prompt_of(4, 1), 4).ok());
  ASSERT_TRUE(s->add_request(2, prompt_of(4, 2), 4).ok());
  Driver d{*s, kv};
  d.step();
  EXPECT_EQ(s->info(2)->state, RequestState::kWaiting);
  ASSERT_TRUE(s->abort(2).ok());
  EXPECT_FALSE(s->info(2).ok());
  EXPECT_EQ(s->stats().n_waiting, 0);
  d.run();
  EXPECT_EQ(d.finished.count(2), 0u);
  expect_all_free(kv);
}

TEST(SchedulerAbort, RunningDecode) {
  auto kv = make_kv(16, 4);
  auto s = Scheduler::create(SchedulerConfig{16, 4, {}}, kv);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->add_request(1, prompt_of(5, 1), 8).ok());
  Driver d{*s, kv};
  d.step();
  d.step();
  EXPECT_EQ(s->info(1)->state, RequestState::kRunning);
  ASSERT_TRUE(s->abort(1).ok());
  EXPECT_FALSE(s->has_unfinished());
  expect_all_free(kv);
  EXPECT_FALSE(s->abort(1).ok());
}

TEST(SchedulerAbort, MidPrefill) {
  auto kv = make_kv(16, 4);
  auto s = Scheduler::create(SchedulerConfig{4, 4, {}}, kv);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->add_request(1, prompt_of(14, 1), 2).ok());
  Driver d{*s, kv};
  StepPlan p = d.step();
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_FALSE(p.requests[0].samples);
  EXPECT_EQ(s->info(1)->n_computed, 4);
  ASSERT_TRUE(s->abort(1).ok());
  expect_all_free(kv);
}

TEST(SchedulerAbort, Preempted) {
  auto kv = make_kv(7, 4, /*prefix_caching=*/false);
  auto s = Scheduler::create(SchedulerConfig{64, 4, {}}, kv);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->add_request(1, prompt_of(4, 1), 16).ok());
  ASSERT_TRUE(s->add_request(2, prompt_of(4, 2), 16).ok());
  Driver d{*s, kv};
  for (int i = 0; i < 100 && s->stats().n_preemptions == 0; ++i) d.step();
  ASSERT_EQ(s->info(2)->state, RequestState::kPreempted);
  ASSERT_TRUE(s->abort(2).ok());
  d.run();
  EXPECT_EQ(d.finished.count(2), 0u);
  EXPECT_EQ(d.finished[1].output, testing::expected_output(1, 16));
  expect_all_free(kv);
}

TEST(SchedulerAbort, WhileStepInFlight) {
  auto kv = make_kv(16, 4);
  auto s = Scheduler::create(SchedulerConfig{16, 4, {}}, kv);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->add_request(1, prompt_of(5, 1), 3).ok());
  ASSERT_TRUE(s->add_request(2, prompt_of(5, 2), 3).ok());
  auto plan = s->schedule();
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(s->abort(1).ok());
  // The engine sampled for both before it saw the abort: the aborted one is ignored.
  const SampledToken sampled[] = {{1, 7, false}, {2, 8, false}};
  auto done = s->update(*plan, sampled);
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_TRUE(done->empty());
  EXPECT_EQ(s->info(2)->output, std::vector<int32_t>{8});
  ASSERT_TRUE(s->abort(2).ok());
  expect_all_free(kv);
}

}  // namespace
}  // namespace dspark::sched
