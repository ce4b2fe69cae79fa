// Greedy acceptance on hand trees and single-step properties of the sampling rule.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

constexpr int32_t kVocab = 10;

std::vector<float> one_hot(int32_t id) {
  std::vector<float> p(kVocab, 0.0f);
  p[static_cast<size_t>(id)] = 1.0f;
  return p;
}

// A target given per node (-1: the anchor) that records which nodes were asked for.
struct NodeTarget {
  std::map<int32_t, std::vector<float>> dist;
  std::vector<int32_t> asked;
  TargetDist fn() {
    return [this](int32_t node) -> const std::vector<float>& {
      asked.push_back(node);
      return dist.at(node);
    };
  }
};

// anchor -> 0 (3), 1 (4); 1 -> 2 (7), 3 (8); 3 -> 4 (1)
DraftTree hand_tree() {
  DraftTree t;
  t.add(3, -1, 0.5f);
  t.add(4, -1, 0.5f);
  t.add(7, 1, 0.5f);
  t.add(8, 1, 0.5f);
  t.add(1, 3, 0.5f);
  return t;
}

double never() {
  ADD_FAILURE() << "greedy acceptance must not draw random numbers";
  return 0.0;
}

TEST(AcceptGreedy, FollowsArgmaxAndTakesBonusAfterPath) {
  NodeTarget target;
  target.dist = {{-1, one_hot(4)}, {1, one_hot(8)}, {3, one_hot(1)}, {4, one_hot(6)}};
  const Acceptance a = accept(hand_tree(), true, target.fn(), never);
  EXPECT_EQ(a.path, (std::vector<int32_t>{1, 3, 4}));
  EXPECT_EQ(a.bonus, 6);
  EXPECT_EQ(target.asked, (std::vector<int32_t>{-1, 1, 3, 4}));  // only the walked nodes
}

TEST(AcceptGreedy, StopsAtFirstMismatch) {
  NodeTarget target;
  target.dist = {{-1, one_hot(4)}, {1, one_hot(9)}};
  const Acceptance a = accept(hand_tree(), true, target.fn(), never);
  EXPECT_EQ(a.path, (std::vector<int32_t>{1}));
  EXPECT_EQ(a.bonus, 9);

  target.dist = {{-1, one_hot(5)}};
  const Acceptance none = accept(hand_tree(), true, target.fn(), never);
  EXPECT_TRUE(none.path.empty());
  EXPECT_EQ(none.bonus, 5);
}

TEST(AcceptGreedy, TokensAloneWalkTheSamePath) {
  // accept_greedy reads only each walked node's token: the path of the distributions' argmaxes.
  std::map<int32_t, int32_t> token = {{-1, 4}, {1, 8}, {3, 1}, {4, 6}};
  std::vector<int32_t> asked;
  const Acceptance a = accept_greedy(hand_tree(), [&](int32_t node) {
    asked.push_back(node);
    return token.at(node);
  });
  EXPECT_EQ(a.path, (std::vector<int32_t>{1, 3, 4}));
  EXPECT_EQ(a.bonus, 6);
  EXPECT_EQ(asked, (std::vector<int32_t>{-1, 1, 3, 4}));

  token = {{-1, 3}, {0, 2}};
  const Acceptance b = accept_greedy(hand_tree(), [&](int32_t node) { return token.at(node); });
  EXPECT_EQ(b.path, (std::vector<int32_t>{0}));
  EXPECT_EQ(b.bonus, 2);
}

TEST(AcceptGreedy, EmptyTreeGivesArgmaxWithFirstMaximumOnTies) {
  NodeTarget target;
  std::vector<float> p(kVocab, 0.05f);
  p[2] = 0.3f;
  p[6] = 0.3f;
  target.dist = {{-1, p}};
  const Acceptance a = accept(DraftTree{}, true, target.fn(), never);
  EXPECT_TRUE(a.path.empty());
  EXPECT_EQ(a.bonus, 2);
}

TEST(AcceptSampling, PointMassAcceptedWithProbabilityPAndExcludedFromResidual) {
  // p = {1: 0.25, 2: 0.75}; a deterministic proposal of 1 is accepted with probability 0.25 and
  // on rejection the bonus must be 2 (1 is removed from the residual).
  NodeTarget target;
  std::vector<float> p(kVocab, 0.0f);
  p[1] = 0.25f;
  p[2] = 0.75f;
  target.dist = {{-1, p}, {0, one_hot(7)}};
  DraftTree t;
  t.add(1, -1, 0.5f);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform = [&] { return u01(rng); };
  int accepted = 0;
  const int runs = 20000;
  for (int i = 0; i < runs; ++i) {
    const Acceptance a = accept(t, false, target.fn(), uniform);
    if (a.path.empty()) {
      EXPECT_EQ(a.bonus, 2);
    } else {
      EXPECT_EQ(a.path, (std::vector<int32_t>{0}));
      EXPECT_EQ(a.bonus, 7);
      accepted += 1;
    }
  }
  // Binomial(20000, 0.25): standard deviation ~61; 5 sigma.
  EXPECT_NEAR(accepted, runs / 4, 310);
}

TEST(AcceptSampling, ProposalOutsideTargetSupportIsNeverAccepted) {
  NodeTarget target;
  std::vector<float> p(kVocab, 0.0f);
  p[3] = 1.0f;
  target.dist = {{-1, p}};
  DraftTree t;
  t.q.push_back(SparseDist{{5, 3}, {0.9f, 0.1f}});
  t.add(5, -1, 0.9f, 0);
  t.add(3, -1, 0.1f, 0);
  target.dist[1] = one_hot(0);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform = [&] { return u01(rng); };
  for (int i = 0; i < 1000; ++i) {
    const Acceptance a = accept(t, false, target.fn(), uniform);
    // 5 is rejected (p(5) = 0); the residual max(0, p - q) is still a point mass on 3 and so is
    // the group's q without 5, hence 3 is accepted with certainty.
    EXPECT_EQ(a.path, (std::vector<int32_t>{1}));
    EXPECT_EQ(a.bonus, 0);
  }
}

TEST(AcceptSampling, PointMassEqualToTargetIsAlwaysAccepted) {
  NodeTarget target;
  target.dist = {{-1, one_hot(4)}, {0, one_hot(2)}};
  DraftTree t;
  t.add(4, -1, 1.0f);
  auto uniform = [] { return 0.999999; };
  const Acceptance a = accept(t, false, target.fn(), uniform);
  EXPECT_EQ(a.path, (std::vector<int32_t>{0}));
  EXPECT_EQ(a.bonus, 2);
}

}  // namespace
}  // namespace dspark::spec
