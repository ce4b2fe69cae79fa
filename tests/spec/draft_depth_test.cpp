// Draft depth before drafting: the learnt cost table and hand-computed optima of
// choose_draft_depth.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

// Latency 1.0 s at 1 token, 1.2 at 2, 1.4 at 4, 2.0 at 8: latency(3) = 1.3, latency(5) = 1.55.
SpsTable table() {
  return SpsTable({1, 2, 4, 8}, {1.0, 1.2, 1.4, 2.0});
}

// survival must outlive the result (DepthInput holds a span of it).
DepthInput one_request(const std::vector<double>& survival) {
  DepthInput in;
  in.base_tokens = 1;
  in.base_commits = 1;
  in.n_drafting = 1;
  in.max_depth = static_cast<int32_t>(survival.size());
  in.max_draft_tokens = 64;
  in.survival = survival;
  return in;
}

TEST(DraftCostTable, MovingAveragePerBucketAndDepth) {
  DraftCostTable cost(4);
  EXPECT_EQ(cost.seconds(1, 1), 0.0);  // never measured: optimistic
  cost.observe(1, 1, 1.0);
  cost.observe(1, 1, 2.0);
  EXPECT_DOUBLE_EQ(cost.seconds(1, 1), 0.8 * 1.0 + 0.2 * 2.0);
  // Unmeasured deeper depths cost what the deepest measured shallower one does.
  EXPECT_DOUBLE_EQ(cost.seconds(1, 3), 1.2);
  // 2 and 3 requests share a bucket; 4 does not, nor does 1.
  cost.observe(2, 2, 0.5);
  EXPECT_DOUBLE_EQ(cost.seconds(3, 2), 0.5);
  EXPECT_EQ(cost.seconds(4, 2), 0.0);
  EXPECT_DOUBLE_EQ(cost.seconds(1, 2), 1.2);
  // Bad values change nothing.
  cost.observe(1, 1, std::numeric_limits<double>::quiet_NaN());
  cost.observe(1, 1, -1.0);
  cost.observe(1, 0, 9.0);
  cost.observe(1, 5, 9.0);
  EXPECT_DOUBLE_EQ(cost.seconds(1, 1), 1.2);
  EXPECT_EQ(cost.seconds(1, 0), 0.0);
}

TEST(ChooseDraftDepth, FreeDrafterTakesTheBestDepth) {
  // Theta(D) = commits / latency: 1/1.0, 1.9/1.2 = 1.58, 2.7/1.3 = 2.08, 3.2/1.4 = 2.29,
  // 3.3/1.55 = 2.13: depth 3 (not unimodal search: the argmax over every depth).
  const DraftCostTable free(4);
  EXPECT_EQ(choose_draft_depth(one_request({0.9, 0.8, 0.5, 0.1}), table(), free), 3);
}

TEST(ChooseDraftDepth, PrefillingAndWaitingRequestsRaiseTheBar) {
  // One drafting request, survival 0.3. Alone: 1.3 / 1.2 = 1.08 beats 1 / 1.0. In a step of 2
  // tokens (latency 1.2; 1.3 with the draft) serving it alone: 1.3 / 1.3 = 1.0 > 1 / 1.2. The
  // same step serving 4 requests (a prompt chunk's, one waiting, ...): 4.3 / 1.3 = 3.31 is less
  // than 4 / 1.2 = 3.33, so the others' delay outweighs the gain: no drafting.
  const DraftCostTable free(1);
  const std::vector<double> survival = {0.3};
  DepthInput in = one_request(survival);
  EXPECT_EQ(choose_draft_depth(in, table(), free), 1);
  in.base_tokens = 2;
  in.base_commits = 1;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 1);
  in.base_commits = 4;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 0);
}

TEST(ChooseDraftDepth, FreeDraftingGoesAsDeepAsAllowed) {
  // Depth 3 is the verify optimum (above); drafting all 4 levels for under 0.01 s is free, so
  // all 4 are drafted and admission decides, even with a forecast that says drafting never pays.
  DraftCostTable cost(4);
  for (int32_t d = 1; d <= 4; ++d) cost.observe(1, d, 0.002 * d);
  const std::vector<double> survival = {0.9, 0.8, 0.5, 0.1};
  DepthInput in = one_request(survival);
  in.free_draft_seconds = 0.01;
  EXPECT_EQ(choose_draft_depth(in, table(), cost), 4);
  const std::vector<double> hopeless = {0.0, 0.0, 0.0, 0.0};
  in.survival = hopeless;
  EXPECT_EQ(choose_draft_depth(in, table(), cost), 4);
  // The budget still caps it: 2 requests, 5 tokens left -> 2 levels.
  in.n_drafting = 2;
  in.max_draft_tokens = 5;
  EXPECT_EQ(choose_draft_depth(in, table(), cost), 2);
  // Not free once the drafting (catch-up included) reaches the threshold: back to the optimum.
  in = one_request(survival);
  in.free_draft_seconds = 0.008;  // 4 levels cost exactly 0.008: not under it
  EXPECT_EQ(choose_draft_depth(in, table(), cost), 3);
  in.free_draft_seconds = 0.01;
  in.catch_up_seconds = 0.005;
  in.remaining_tokens = 1e9;  // amortised to nothing in the optimum, but not free
  EXPECT_EQ(choose_draft_depth(in, table(), cost), 3);
}

TEST(ChooseDraftDepth, DrafterCostMovesTheOptimum) {
  // 0.5 s per step at depth 1 (and, unmeasured, deeper): 1.9/1.7 = 1.12, 2.7/1.8 = 1.5,
  // 3.2/1.9 = 1.68, 3.3/2.05 = 1.61 against 1.0: depth 3.
  DraftCostTable cost(4);
  cost.observe(1, 1, 0.5);
  EXPECT_EQ(choose_draft_depth(one_request({0.9, 0.8, 0.5, 0.1}), table(), cost), 3);
  // Drafting per level priced at 0.6 s each: depth 1 1.9/1.8 = 1.056, 2 2.7/2.5 = 1.08,
  // 3 3.2/3.2 = 1.0, 4 3.3/3.95 = 0.84: depth 2.
  DraftCostTable levels(4);
  for (int32_t d = 1; d <= 4; ++d) levels.observe(1, d, 0.6 * d);
  EXPECT_EQ(choose_draft_depth(one_request({0.9, 0.8, 0.5, 0.1}), table(), levels), 2);
  // A drafter slower than the gain: plain decoding.
  DraftCostTable slow(4);
  slow.observe(1, 1, 5.0);
  EXPECT_EQ(choose_draft_depth(one_request({0.9, 0.8, 0.5, 0.1}), table(), slow), 0);
}

TEST(ChooseDraftDepth, CatchUpIsAmortisedOverTheRemainingSteps) {
  const DraftCostTable free(4);
  const std::vector<double> survival = {0.9, 0.8, 0.5, 0.1};
  DepthInput in = one_request(survival);
  // 10 s of catch-up over 64 tokens: depth 3 commits 3.2 per step, 20 steps, +0.5 s a step:
  // 3.2 / 1.9 = 1.68 beats depth 2 (2.7 / (1.3 + 10 / 23.7) = 1.57) and plain (1.0).
  in.catch_up_seconds = 10.0;
  in.remaining_tokens = 64;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 3);
  // 100 s over the same 64 tokens never pays (depth 3: 3.2 / 6.4 = 0.5 against 1.0).
  in.catch_up_seconds = 100.0;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 0);
  // ... but does over 6,400 tokens (depth 3: 3.2 / 1.45 = 2.2).
  in.remaining_tokens = 6400;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 3);
}

TEST(ChooseDraftDepth, CatchUpOnlyAmortisedWhereDraftingWillGoOn) {
  // One request decoding next to a prefill chunk (8 base tokens, 2.0 s on the compute-bound
  // table) with 5 s of catch-up. Amortised over many tokens the catch-up costs nothing: plain
  // 1 / 2.0 = 0.5/s, depth 1 1.9 / 2.25 = 0.84, 2 2.7 / 2.5 = 1.08, 3 3.2 / 2.75 = 1.16,
  // 4 3.3 / 3.0 = 1.1: depth 3.
  const SpsTable loaded({1, 2, 4, 8, 16, 32}, {1.0, 1.2, 1.4, 2.0, 4.0, 8.0});
  const DraftCostTable free(4);
  const std::vector<double> survival = {0.9, 0.8, 0.5, 0.1};
  DepthInput in = one_request(survival);
  in.base_tokens = 8;
  in.catch_up_seconds = 5.0;
  in.remaining_tokens = 1e9;
  in.cautious_survival = survival;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 3);
  // One request coming: caught up it drafts at depth 3 (above), so the catch-up is amortised.
  in.coming_requests = 1;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 3);
  // Eight coming: at that load drafting does not pay (LoadAndBudget), so this step pays the
  // 5 s: 1.9 / 7.25 = 0.26 at best against 0.5 plain.
  in.coming_requests = 8;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 0);
  // The check reads the cautious survival: hopeless there, hopeless for one request too.
  const std::vector<double> hopeless = {0.0, 0.0, 0.0, 0.0};
  in.coming_requests = 1;
  in.cautious_survival = hopeless;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 0);
  // Paying but by less than the margin: 1.25 / 1.2 = 1.04 x plain at depth 1 with survival
  // 0.25 is not worth an investment of 5 s, unless no margin is asked for.
  const std::vector<double> thin = {0.25, 0.0, 0.0, 0.0};
  in.cautious_survival = thin;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 0);
  in.catch_up_margin = 0.0;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 3);
  // Without a catch-up there is nothing to check.
  in.cautious_survival = hopeless;
  in.catch_up_seconds = 0.0;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 3);
}

TEST(ChooseDraftDepth, APrefillBoundsWhatDraftingAddsToTheStep) {
  // One request decoding next to a prompt's 15-token chunk: 16 base tokens, 4.0 s, and each
  // drafted token adds 0.25 s on this compute-bound table. Counting commits only, depth 3 wins:
  // plain 2 / 4.0 = 0.5, then 2.9 / 4.25, 3.7 / 4.5, 4.2 / 4.75 = 0.884, 4.3 / 5.0.
  const SpsTable loaded({1, 2, 4, 8, 16, 32}, {1.0, 1.2, 1.4, 2.0, 4.0, 8.0});
  const DraftCostTable free(4);
  const std::vector<double> survival = {0.9, 0.8, 0.5, 0.1};
  DepthInput in = one_request(survival);
  in.base_tokens = 16;
  in.base_commits = 2;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 3);
  // The prompt's first token waits for the step: at most 5% more (0.2 s) allows no draft.
  in.n_prefilling = 1;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 0);
  // 13% (0.52 s) allows two drafted tokens (0.5 s), not three.
  in.max_prefill_delay = 0.13;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 2);
  // The drafter's own time counts: 0.1 s a round leaves room for one.
  DraftCostTable slow(4);
  slow.observe(1, 1, 0.1);
  EXPECT_EQ(choose_draft_depth(in, loaded, slow), 1);
  // So does a catch-up, paid in full by this step whatever it is amortised over.
  in.catch_up_seconds = 0.3;
  in.remaining_tokens = 1e9;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 0);
  // A free drafter goes as deep as the cap, not as deep as the budget.
  in.catch_up_seconds = 0.0;
  in.free_draft_seconds = 1.0;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 2);
  // No prompt in the step: no cap.
  in.n_prefilling = 0;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 4);
}

TEST(CautiousSurvival, LowerOfForecastAndShrunkObservedRates) {
  // Depth 1: 8 of 10 accepted, with 8 prior rounds at 0.5: 12 / 18. Depth 2: 4 of 8 -> 8 / 16,
  // so 12/18 * 1/2. Depth 3 never verified: the prior alone, 1/2 again; the forecast is lower.
  const std::vector<double> forecast = {1.0, 1.0, 0.1};
  const std::vector<double> verified = {10, 8};
  const std::vector<double> accepted = {8, 4};
  const std::vector<double> s = cautious_survival(forecast, verified, accepted);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_DOUBLE_EQ(s[0], 12.0 / 18.0);
  EXPECT_DOUBLE_EQ(s[1], 12.0 / 18.0 * 0.5);
  EXPECT_DOUBLE_EQ(s[2], 0.1);
  // No rounds at all: the prior's survival 0.5^d, under an optimistic forecast.
  const std::vector<double> optimistic = {1.0, 1.0};
  const std::vector<double> prior = cautious_survival(optimistic, {}, {});
  EXPECT_DOUBLE_EQ(prior[0], 0.5);
  EXPECT_DOUBLE_EQ(prior[1], 0.25);
}

TEST(RecentAcceptance, CountsFadeSoTheEstimateFollowsTheWorkload) {
  RecentAcceptance recent;
  EXPECT_TRUE(recent.verified_at().empty());
  recent.observe(2, 1);  // depth 1 accepted, depth 2 tried and rejected
  ASSERT_EQ(recent.verified_at().size(), 2u);
  EXPECT_DOUBLE_EQ(recent.verified_at()[0], 1.0);
  EXPECT_DOUBLE_EQ(recent.verified_at()[1], 1.0);
  EXPECT_DOUBLE_EQ(recent.accepted_at()[0], 1.0);
  EXPECT_DOUBLE_EQ(recent.accepted_at()[1], 0.0);
  // A shallower round fades the deeper counts without adding to them.
  recent.observe(1, 0);
  EXPECT_DOUBLE_EQ(recent.verified_at()[0], RecentAcceptance::kKeep + 1.0);
  EXPECT_DOUBLE_EQ(recent.verified_at()[1], RecentAcceptance::kKeep);
  EXPECT_DOUBLE_EQ(recent.accepted_at()[0], RecentAcceptance::kKeep);

  // A long run of rejections at depth 1 after a long run of acceptances: the cumulative rate
  // would still say 1/2; the faded one follows the rejections.
  RecentAcceptance shift;
  for (int i = 0; i < 2000; ++i) shift.observe(1, 1);
  for (int i = 0; i < 2000; ++i) shift.observe(1, 0);
  const std::vector<double> forecast = {1.0};
  const std::vector<double> s =
      cautious_survival(forecast, shift.verified_at(), shift.accepted_at());
  EXPECT_LT(s[0], 0.05);
}

TEST(ChooseDraftDepth, LoadAndBudget) {
  const DraftCostTable free(4);
  const std::vector<double> survival = {0.9, 0.8, 0.5, 0.1};
  // The budget caps the drafted tokens: 1 request, 2 tokens.
  DepthInput in = one_request(survival);
  in.max_draft_tokens = 2;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 2);
  // 8 requests at 8 base tokens where the forward is compute-bound (0.25 s per token beyond
  // 8): plain 8 / 2.0 = 4/s; depth 1 15.2 / 4.0 = 3.8, depth 2 21.6 / 6.0 = 3.6, depth 3
  // 25.6 / 8.0 = 3.2, depth 4 26.4 / 10.0: no drafting at this load.
  const SpsTable loaded({1, 2, 4, 8, 16, 32}, {1.0, 1.2, 1.4, 2.0, 4.0, 8.0});
  in = one_request(survival);
  in.base_tokens = 8;
  in.base_commits = 8;
  in.n_drafting = 8;
  EXPECT_EQ(choose_draft_depth(in, loaded, free), 0);
  // The same requests on the memory-bound table: depth 1 15.2 / 3.2 = 4.75, depth 2
  // 21.6 / 4.4 = 4.9, depth 3 25.6 / 5.6 = 4.57 against 4/s: depth 2.
  EXPECT_EQ(choose_draft_depth(in, table(), free), 2);
  in.n_drafting = 0;
  EXPECT_EQ(choose_draft_depth(in, table(), free), 0);
  // Ties go to the shallower depth: survival 0 adds nothing.
  EXPECT_EQ(choose_draft_depth(one_request({0.0, 0.0}), SpsTable({1}, {1.0}), free), 0);
}

// The payoff guard: drafting at a load stops once its drafted steps lost to plain decoding, with
// a retry every kRetryEvery refused steps; loads are judged apart.
TEST(PayoffGuard, StopsALosingLoadAndRetries) {
  PayoffGuard guard;
  EXPECT_DOUBLE_EQ(guard.gain(4), 1.0);
  for (int i = 0; i < PayoffGuard::kMinSteps - 1; ++i) {
    EXPECT_TRUE(guard.allows(4));
    guard.observe(4, 100.0, 80.0);  // each drafted step reached 0.8 of plain's rate
  }
  EXPECT_TRUE(guard.allows(4)) << "judged before kMinSteps drafted steps";
  guard.observe(4, 100.0, 80.0);
  EXPECT_NEAR(guard.gain(4), 0.8, 1e-9);  // the first steps average evenly
  EXPECT_NEAR(guard.gain(5), 0.8, 1e-9);  // 4..7 share a bucket
  int allowed = 0;
  for (int i = 0; i < 4 * PayoffGuard::kRetryEvery; ++i) allowed += guard.allows(6) ? 1 : 0;
  EXPECT_EQ(allowed, 4);  // one retry per kRetryEvery refused steps
  // Other loads are not judged by this one.
  EXPECT_TRUE(guard.allows(1));
  EXPECT_TRUE(guard.allows(8));
  EXPECT_DOUBLE_EQ(guard.gain(16), 1.0);
}

TEST(PayoffGuard, AWinningLoadKeepsDraftingAndRetriesCanReopen) {
  PayoffGuard guard;
  for (int i = 0; i < 3 * PayoffGuard::kMinSteps; ++i) {
    EXPECT_TRUE(guard.allows(1));
    guard.observe(1, 50.0, 75.0);
  }
  EXPECT_NEAR(guard.gain(1), 1.5, 1e-9);
  // A small loss within step noise (above kFloor) does not stop drafting.
  for (int i = 0; i < 200; ++i) guard.observe(2, 100.0, 99.0);
  EXPECT_TRUE(guard.allows(2));
  // A load that lost, then gains on its retries, drafts again.
  for (int i = 0; i < PayoffGuard::kMinSteps; ++i) guard.observe(32, 100.0, 50.0);
  EXPECT_FALSE(guard.allows(32));
  // Steps at the load: only the retries draft, and they now gain 1.5x.
  int steps = 0, retries = 0;
  for (; steps < 100 * PayoffGuard::kRetryEvery && guard.gain(32) < PayoffGuard::kFloor; ++steps) {
    if (!guard.allows(32)) continue;
    ++retries;
    guard.observe(32, 100.0, 150.0);
  }
  EXPECT_GE(guard.gain(32), PayoffGuard::kFloor);
  EXPECT_GT(retries, 1);
  EXPECT_LE(steps, (retries + 1) * PayoffGuard::kRetryEvery);
  EXPECT_TRUE(guard.allows(32));
  // Bad rates are ignored.
  guard.observe(64, 0.0, 10.0);
  guard.observe(64, 10.0, std::numeric_limits<double>::infinity());
  guard.observe(64, std::nan(""), 10.0);
  EXPECT_DOUBLE_EQ(guard.gain(64), 1.0);
}

}  // namespace
}  // namespace dspark::spec
