// Request groups (n completions of one prompt): the prompt is prefilled once and the other
// members fork its KV; waiting members do not hold up other requests; a member finishing at its
// first token forks the waiting ones on its way out; abort and preemption of the prefilling
// member make the next one prefill.
#include <gtest/gtest.h>

#include <algorithm>

#include "dspark/sched.h"
#include "sched/sched_driver.h"

namespace dspark::sched {
namespace {

using testing::Driver;
using testing::expected_output;
using testing::make_kv;
using testing::make_sched;
using testing::prompt_of;

void add_group(Scheduler& s, RequestId first, int32_t n, const std::vector<int32_t>& prompt,
               int32_t max_new_tokens) {
  for (RequestId id = first; id < first + n; ++id) {
    Status st = s.add_request(id, prompt, max_new_tokens, first);
    ASSERT_TRUE(st.ok()) << st.message();
  }
}

const ScheduledRequest* find(const StepPlan& p, RequestId id) {
  auto it = std::find_if(p.requests.begin(), p.requests.end(),
                         [&](const ScheduledRequest& r) { return r.id == id; });
  return it == p.requests.end() ? nullptr : &*it;
}

void expect_idle(const kv::BlockManager& kv) {
  EXPECT_EQ(kv.n_requests(), 0);
  EXPECT_EQ(kv.n_available_blocks(), kv.pool().n_blocks());
  Status inv = kv.check_invariants();
  EXPECT_TRUE(inv.ok()) << inv.message();
}

class GroupTest : public ::testing::TestWithParam<bool> {};

TEST_P(GroupTest, PromptPrefilledOnceThenForked) {
  auto kv = make_kv(64, 4, GetParam());
  Scheduler s = make_sched(kv, 64, 8);
  add_group(s, 1, 3, prompt_of(10, 1), 4);
  Driver d{s, kv};
  StepPlan p = d.step();
  ASSERT_EQ(p.requests.size(), 1u);  // the others wait for the prompt's KV
  EXPECT_EQ(p.requests[0].id, 1);
  EXPECT_EQ(p.requests[0].n_tokens, 10);
  EXPECT_EQ(s.info(2)->state, RequestState::kWaiting);

  p = d.step();
  ASSERT_EQ(p.requests.size(), 3u);
  for (RequestId id : {2, 3}) {
    const ScheduledRequest* r = find(p, id);
    ASSERT_NE(r, nullptr);
    EXPECT_TRUE(r->prefill);
    EXPECT_EQ(r->first_position, 9);  // only the last prompt token
    EXPECT_EQ(r->n_tokens, 1);
    EXPECT_TRUE(r->samples);
  }
  ASSERT_EQ(p.copies.size(), 2u);  // the partial block [8, 10), once per fork
  const std::vector<int32_t> leader = *kv.block_table(1);
  EXPECT_EQ(p.copies[0].from_block, leader[2]);
  EXPECT_EQ((*kv.block_table(2))[0], leader[0]);
  EXPECT_EQ(kv.pool().ref_count(leader[1]), 3);
  EXPECT_EQ(s.stats().n_forked_tokens, 18);

  d.run();
  for (RequestId id : {1, 2, 3}) EXPECT_EQ(d.finished[id].output, expected_output(id, 4));
  expect_idle(kv);
}

TEST_P(GroupTest, WaitingMembersDoNotHoldUpOthers) {
  auto kv = make_kv(64, 4, GetParam());
  Scheduler s = make_sched(kv, 64, 8, /*chunk=*/4);
  add_group(s, 1, 2, prompt_of(12, 1), 3);
  ASSERT_TRUE(s.add_request(9, prompt_of(3, 9), 3).ok());
  Driver d{s, kv};
  StepPlan p = d.step();  // leader's first chunk and the plain request
  ASSERT_EQ(p.requests.size(), 2u);
  EXPECT_EQ(p.requests[0].id, 1);
  EXPECT_EQ(p.requests[1].id, 9);
  d.step();
  p = d.step();  // leader at 8 + 4 = 12 tokens: the member still waits for the update
  EXPECT_EQ(find(p, 2), nullptr);
  p = d.step();
  ASSERT_NE(find(p, 2), nullptr);
  EXPECT_EQ(find(p, 2)->first_position, 11);
  d.run();
  for (RequestId id : {1, 2, 9}) EXPECT_EQ(d.finished[id].output, expected_output(id, 3));
  expect_idle(kv);
}

TEST_P(GroupTest, AbortOfThePrefillingMemberHandsOver) {
  auto kv = make_kv(64, 4, GetParam());
  Scheduler s = make_sched(kv, 4, 8);  // 4 tokens per step: a 10-token prompt takes 3 steps
  add_group(s, 1, 3, prompt_of(10, 1), 2);
  Driver d{s, kv};
  d.step();
  ASSERT_TRUE(s.abort(1).ok());
  StepPlan p = d.step();  // 2 prefills now (from a cache hit, if any), 3 waits
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].id, 2);
  EXPECT_EQ(p.requests[0].first_position, GetParam() ? 4 : 0);
  d.run();
  EXPECT_EQ(d.finished.count(1), 0u);
  for (RequestId id : {2, 3}) EXPECT_EQ(d.finished[id].output, expected_output(id, 2));
  EXPECT_EQ(s.stats().n_forked_tokens, 9);  // 3 forked from 2
  expect_idle(kv);
}

TEST_P(GroupTest, MemberFinishingAtItsFirstTokenHandsItsKvOver) {
  auto kv = make_kv(64, 4, GetParam());
  Scheduler s = make_sched(kv, 64, 8);
  add_group(s, 1, 3, prompt_of(10, 1), 1);
  ASSERT_TRUE(s.add_request(9, prompt_of(5, 9), 1).ok());
  Driver d{s, kv};
  d.step();  // 1 prefills and finishes, forking 2 and 3 on its way out
  EXPECT_EQ(d.finished.count(1), 1u);
  EXPECT_EQ(s.info(2)->state, RequestState::kRunning);
  EXPECT_EQ(s.info(3)->n_computed, 9);
  EXPECT_EQ(s.stats().n_forked_tokens, 18);
  StepPlan p = d.step();
  ASSERT_EQ(p.requests.size(), 2u);
  for (const ScheduledRequest& r : p.requests) {
    EXPECT_EQ(r.first_position, 9);
    EXPECT_EQ(r.n_tokens, 1);
  }
  EXPECT_EQ(p.copies.size(), 2u);  // made in update(), done before this step's forward
  d.run();
  for (RequestId id : {1, 2, 3, 9}) EXPECT_EQ(d.finished[id].output, expected_output(id, 1));
  expect_idle(kv);
}

TEST_P(GroupTest, HandOverRespectsMaxNumSeqs) {
  auto kv = make_kv(64, 4, GetParam());
  Scheduler s = make_sched(kv, 64, 2);
  add_group(s, 1, 4, prompt_of(10, 1), 1);
  Driver d{s, kv};
  d.step();  // 1 finishes; 2 and 3 fork (two seats), 4 waits
  EXPECT_EQ(s.info(4)->state, RequestState::kWaiting);
  d.step();  // 2 and 3 finish: 2 forks 4 on its way out
  EXPECT_EQ(s.info(4)->state, RequestState::kRunning);
  d.run();
  EXPECT_EQ(s.stats().n_forked_tokens, 27);
  for (RequestId id : {1, 2, 3, 4}) EXPECT_EQ(d.finished[id].output, expected_output(id, 1));
  expect_idle(kv);
}

TEST_P(GroupTest, PreemptionUnderATinyPool) {
  // 12 blocks of 4: each member needs 5 blocks for 10 prompt + 9 output tokens, so 4 members
  // sharing 2 prompt blocks still cannot all run to the end together.
  auto kv = make_kv(12, 4, GetParam());
  Scheduler s = make_sched(kv, 64, 8);
  add_group(s, 1, 4, prompt_of(10, 1), 10);
  ASSERT_TRUE(s.add_request(9, prompt_of(6, 9), 10).ok());
  Driver d{s, kv};
  d.run();
  EXPECT_GT(s.stats().n_preemptions, 0);
  EXPECT_GT(s.stats().n_forked_tokens, 0);
  for (RequestId id : {1, 2, 3, 4, 9}) EXPECT_EQ(d.finished[id].output, expected_output(id, 10));
  expect_idle(kv);
}

INSTANTIATE_TEST_SUITE_P(PrefixCaching, GroupTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "On" : "Off"; });

TEST(Group, OneTokenPromptsRunAsUsual) {
  auto kv = make_kv(16, 4, false);
  Scheduler s = make_sched(kv, 64, 8);
  add_group(s, 1, 3, {42}, 2);
  Driver d{s, kv};
  StepPlan p = d.step();
  EXPECT_EQ(p.requests.size(), 3u);  // nothing to share: all prefill at once
  d.run();
  EXPECT_EQ(s.stats().n_forked_tokens, 0);
  expect_idle(kv);
}

TEST(Group, MembersMustShareThePrompt) {
  auto kv = make_kv(16, 4);
  Scheduler s = make_sched(kv, 64, 8);
  ASSERT_TRUE(s.add_request(1, prompt_of(5, 1), 2, 1).ok());
  EXPECT_FALSE(s.add_request(2, prompt_of(5, 2), 2, 1).ok());
  EXPECT_FALSE(s.add_request(3, prompt_of(6, 1), 2, 1).ok());
  EXPECT_TRUE(s.add_request(4, prompt_of(5, 1), 2, 1).ok());
  EXPECT_TRUE(s.add_request(5, prompt_of(5, 2), 2, 5).ok());  // another group
}

}  // namespace
}  // namespace dspark::sched
