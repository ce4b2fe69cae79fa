// admit() on fabricated survivals and SPS tables whose optima are worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

using Nodes = std::vector<int32_t>;

// Latency (seconds) for B = 1, 2, ... tokens.
SpsTable by_size(const std::vector<double>& seconds) {
  std::vector<int32_t> sizes;
  for (size_t i = 0; i < seconds.size(); ++i) sizes.push_back(static_cast<int32_t>(i) + 1);
  return SpsTable(sizes, seconds);
}

SpsTable flat() {
  return by_size(std::vector<double>(64, 0.01));
}

Candidates chain(const std::vector<float>& survival) {
  Candidates c;
  c.survival = survival;
  for (size_t i = 0; i < survival.size(); ++i) c.parent.push_back(static_cast<int32_t>(i) - 1);
  return c;
}

ControllerInput input(std::vector<Candidates> requests, int32_t budget = 100) {
  ControllerInput in;
  in.base_tokens = static_cast<int32_t>(requests.size());
  in.requests = std::move(requests);
  in.max_draft_tokens = budget;
  return in;
}

TEST(Controller, IdleServerAdmitsTheWholeChain) {
  const auto out = admit(input({chain({0.9f, 0.8f, 0.7f, 0.6f, 0.5f})}), flat());
  ASSERT_EQ(out.admitted.size(), 1u);
  EXPECT_EQ(out.admitted[0], (Nodes{0, 1, 2, 3, 4}));
  EXPECT_NEAR(out.expected_tokens, 4.5, 1e-6);
  EXPECT_NEAR(out.predicted_throughput, 450.0, 1e-4);
}

TEST(Controller, SteepCostAdmitsNothing) {
  // Latency proportional to B: one more token halves SPS at B = 1, and 1.9 * 50 < 1 * 100.
  std::vector<double> seconds;
  for (int b = 1; b <= 16; ++b) seconds.push_back(0.01 * b);
  const auto out = admit(input({chain({0.9f, 0.8f})}), by_size(seconds));
  EXPECT_TRUE(out.admitted[0].empty());
  EXPECT_DOUBLE_EQ(out.expected_tokens, 1.0);
  EXPECT_NEAR(out.predicted_throughput, 100.0, 1e-9);
}

TEST(Controller, StopsAtFirstNonImprovingCandidate) {
  // theta: B=1 -> 1.0, B=2 -> 1.9/1.1 = 1.727 (admit), B=3 -> 2.4/1.6 = 1.5 (stop). Going on
  // would reach B=4 -> 2.85/1.6 = 1.781 > 1.727, which the early stop must not take.
  const SpsTable sps = by_size({1.0, 1.1, 1.6, 1.6, 1.6});
  const auto out = admit(input({chain({0.9f, 0.5f, 0.45f, 0.4f})}), sps);
  EXPECT_EQ(out.admitted[0], (Nodes{0}));
  EXPECT_NEAR(out.expected_tokens, 1.9, 1e-6);
  EXPECT_NEAR(out.predicted_throughput, 1.9 / 1.1, 1e-6);
}

TEST(Controller, RequestsThatDraftNothingPayForALongerStep) {
  // SPS(1) = 100, SPS(2) = 100 / 1.5. Alone: theta 1 * 100 -> 1.6 * 66.7 = 106.7, admit.
  // With two prefilling requests in the step as well (other_commits 2): 3 * 100 = 300 against
  // 3.6 * 66.7 = 240: the drafting request's gain is smaller than what the others lose.
  const SpsTable sps = by_size({0.01, 0.015, 0.02});
  ControllerInput in = input({chain({0.6f})});
  EXPECT_EQ(admit(in, sps).admitted[0], (Nodes{0}));
  in.other_commits = 2;
  const auto out = admit(in, sps);
  EXPECT_TRUE(out.admitted[0].empty());
  EXPECT_DOUBLE_EQ(out.expected_tokens, 1.0);  // the drafting requests' own tau
}

TEST(Controller, BaseTokensCountTowardTheForwardSize) {
  // Latency doubles from B = 5 on.
  std::vector<double> seconds(10, 0.02);
  for (int b = 0; b < 4; ++b) seconds[static_cast<size_t>(b)] = 0.01;
  const SpsTable sps = by_size(seconds);
  ControllerInput in = input({chain({0.9f, 0.9f, 0.9f})});
  EXPECT_EQ(admit(in, sps).admitted[0], (Nodes{0, 1, 2}));  // B = 1 + 3 = 4
  // Two prefill tokens as well: B=4 gives 1.9 * 100 = 190, B=5 gives 2.8 * 50 = 140: stop.
  in.base_tokens = 3;
  const auto out = admit(in, sps);
  EXPECT_EQ(out.admitted[0], (Nodes{0}));
  EXPECT_NEAR(out.predicted_throughput, 190.0, 1e-4);
}

TEST(Controller, TiesGoShallowerThenRequestThenNode) {
  Candidates deep;  // root 0.8 with a child also at 0.8
  deep.survival = {0.8f, 0.8f};
  deep.parent = {-1, 0};
  const Candidates shallow = chain({0.8f});
  EXPECT_EQ(admit(input({deep, shallow}, 2), flat()).admitted,
            (std::vector<Nodes>{{0}, {0}}));  // depth 1 of request 1 before depth 2 of request 0
  EXPECT_EQ(admit(input({deep, shallow}, 1), flat()).admitted, (std::vector<Nodes>{{0}, {}}));
  EXPECT_EQ(admit(input({shallow, shallow}, 1), flat()).admitted, (std::vector<Nodes>{{0}, {}}));
  Candidates siblings;
  siblings.survival = {0.6f, 0.6f};
  siblings.parent = {-1, -1};
  EXPECT_EQ(admit(input({siblings}, 1), flat()).admitted, (std::vector<Nodes>{{0}}));
}

TEST(Controller, BudgetCutsTheLowestSurvivals) {
  const auto out =
      admit(input({chain({0.9f, 0.5f}), chain({0.95f, 0.3f}), chain({0.7f, 0.6f})}, 4), flat());
  EXPECT_EQ(out.admitted, (std::vector<Nodes>{{0}, {0}, {0, 1}}));
  EXPECT_NEAR(out.expected_tokens, 3.0 + 0.95 + 0.9 + 0.7 + 0.6, 1e-6);
  EXPECT_NEAR(out.predicted_throughput, (3.0 + 3.15) * 100.0, 1e-4);
  const auto none = admit(input({chain({0.9f})}, 0), flat());
  EXPECT_TRUE(none.admitted[0].empty());
  const auto negative = admit(input({chain({0.9f})}, -5), flat());
  EXPECT_TRUE(negative.admitted[0].empty());
}

TEST(Controller, ChildWaitsForItsParent) {
  // Malformed survivals (a child above its parent): the child still comes after the parent.
  Candidates c;
  c.survival = {0.3f, 0.9f, 0.5f};
  c.parent = {-1, 0, -1};
  EXPECT_EQ(admit(input({c}, 1), flat()).admitted[0], (Nodes{2}));
  EXPECT_EQ(admit(input({c}, 2), flat()).admitted[0], (Nodes{0, 2}));
  EXPECT_EQ(admit(input({c}, 3), flat()).admitted[0], (Nodes{0, 1, 2}));
}

TEST(Controller, SkipsUnusableCandidates) {
  Candidates c;
  c.survival = {0.0f, std::nanf(""), 0.5f, 0.4f, 0.9f};
  c.parent = {-1, -1, -1, 4, 2};  // node 3 names a later parent
  EXPECT_EQ(admit(input({c}), flat()).admitted[0], (Nodes{2, 4}));
  Candidates mismatched;
  mismatched.survival = {0.9f, 0.8f};
  mismatched.parent = {-1};
  EXPECT_TRUE(admit(input({mismatched}), flat()).admitted[0].empty());
  const auto empty = admit(input({}), flat());
  EXPECT_TRUE(empty.admitted.empty());
  EXPECT_EQ(empty.expected_tokens, 0.0);
}

TEST(Controller, FixedDepthAdmitsBreadthFirstWithinBudget) {
  Candidates a;
  a.survival = {0.1f, 0.0f, 0.9f, 0.2f};
  a.parent = {-1, 0, 1, -1};  // depths 1, 2, 3, 1
  Candidates b;
  b.survival = {0.5f, 0.4f};
  b.parent = {-1, 0};  // depths 1, 2
  ControllerInput in = input({a, b});
  in.fixed_depth = 2;
  const auto all = admit(in, by_size(std::vector<double>(16, 0.01)));
  EXPECT_EQ(all.admitted, (std::vector<Nodes>{{0, 1, 3}, {0, 1}}));
  EXPECT_NEAR(all.expected_tokens, 2.0 + 0.1 + 0.0 + 0.2 + 0.5 + 0.4, 1e-6);
  EXPECT_NEAR(all.predicted_throughput, all.expected_tokens * 100.0, 1e-4);
  in.max_draft_tokens = 3;  // every depth-1 node first
  EXPECT_EQ(admit(in, flat()).admitted, (std::vector<Nodes>{{0, 3}, {0}}));
  in.fixed_depth = 0;
  EXPECT_EQ(admit(in, flat()).admitted, (std::vector<Nodes>{{}, {}}));
}

}  // namespace
}  // namespace dspark::spec
