#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

// anchor -> 0 (tok 5) -> 2 (tok 7) -> 3 (tok 1)
//        -> 1 (tok 6) -> 4 (tok 2)
DraftTree sample_tree() {
  DraftTree t;
  t.q.push_back(SparseDist{{5, 6, 9}, {0.5f, 0.3f, 0.2f}});
  t.add(5, -1, 0.9f, 0);
  t.add(6, -1, 0.4f, 0);
  t.add(7, 0, 0.8f);
  t.add(1, 2, 0.7f);
  t.add(2, 1, 0.3f);
  return t;
}

TEST(DraftTree, AddReturnsIndicesAndDepths) {
  DraftTree t = sample_tree();
  EXPECT_EQ(t.size(), 5);
  EXPECT_EQ(t.depth(0), 1);
  EXPECT_EQ(t.depth(1), 1);
  EXPECT_EQ(t.depth(2), 2);
  EXPECT_EQ(t.depth(3), 3);
  EXPECT_EQ(t.depth(4), 2);
  EXPECT_EQ(t.depth(-1), 0);
  EXPECT_EQ(t.depth(5), 0);
  EXPECT_TRUE(t.check(10).ok()) << t.check(10).message();
  t.clear();
  EXPECT_EQ(t.size(), 0);
  EXPECT_TRUE(t.q.empty());
  EXPECT_TRUE(t.confidence.empty());
}

TEST(DraftTree, DepthOfMalformedTreeTerminates) {
  DraftTree t;
  t.add(1, 1, 0.5f);  // parent points forward
  t.add(2, 0, 0.5f);
  EXPECT_EQ(t.depth(0), 1);
  EXPECT_EQ(t.depth(1), 2);
  EXPECT_FALSE(t.check(10).ok());
}

void expect_error(const DraftTree& t, int64_t vocab, const std::string& fragment) {
  const Status s = t.check(vocab);
  ASSERT_FALSE(s.ok()) << "expected an error containing: " << fragment;
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(DraftTree, CheckNamesEachViolation) {
  {
    DraftTree t = sample_tree();
    t.confidence.pop_back();
    expect_error(t, 10, "shapes disagree");
  }
  {
    DraftTree t = sample_tree();
    t.parent[2] = 3;
    expect_error(t, 10, "node 2: parent 3 does not precede");
  }
  {
    DraftTree t = sample_tree();
    t.parent[1] = -2;
    expect_error(t, 10, "node 1: parent -2");
  }
  expect_error(sample_tree(), 9, "q[0]: id 9 outside [0, 9)");
  {
    DraftTree t = sample_tree();
    t.tokens[3] = -1;
    expect_error(t, 10, "node 3: token -1 outside [0, 10)");
  }
  {
    DraftTree t = sample_tree();
    t.confidence[4] = 1.5f;
    expect_error(t, 10, "node 4: confidence");
  }
  {
    DraftTree t = sample_tree();
    t.confidence[4] = std::numeric_limits<float>::quiet_NaN();
    expect_error(t, 10, "node 4: confidence");
  }
  {
    DraftTree t = sample_tree();
    t.tokens[1] = 5;
    t.q_index[1] = -1;
    expect_error(t, 10, "node 1: token 5 repeats a sibling");
  }
  {
    DraftTree t = sample_tree();
    t.q_index[2] = 1;
    expect_error(t, 10, "node 2: q index 1 outside [-1, 1)");
  }
  {
    DraftTree t = sample_tree();
    t.q_index[4] = 0;  // token 2 is not in q[0]
    expect_error(t, 10, "node 4: token 2 has no probability in q[0]");
  }
  {
    DraftTree t = sample_tree();
    t.q[0].probs[1] = 0.0f;  // node 1's token 6 now has q = 0
    t.q[0].probs[2] = 0.5f;
    expect_error(t, 10, "node 1: token 6 has no probability");
  }
  {
    DraftTree t = sample_tree();
    t.q[0].probs[0] = 0.9f;
    expect_error(t, 10, "q[0]: probabilities sum to");
  }
  {
    DraftTree t = sample_tree();
    t.q[0].ids[2] = 5;
    expect_error(t, 10, "q[0]: id 5 repeated");
  }
  {
    DraftTree t = sample_tree();
    t.q[0].probs.pop_back();
    expect_error(t, 10, "q[0]: 3 ids but 2 probs");
  }
}

TEST(DraftTree, SubsetRenumbersAndCompactsQ) {
  DraftTree t = sample_tree();
  t.q.insert(t.q.begin(), SparseDist{{3}, {1.0f}});  // unused distribution at index 0
  t.q_index[0] = 1;
  t.q_index[1] = 1;
  const std::vector<int32_t> keep = {1, 4};
  const DraftTree s = t.subset(keep);
  ASSERT_EQ(s.size(), 2);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{6, 2}));
  EXPECT_EQ(s.parent, (std::vector<int32_t>{-1, 0}));
  EXPECT_EQ(s.confidence, (std::vector<float>{0.4f, 0.3f}));
  EXPECT_EQ(s.q_index, (std::vector<int32_t>{0, -1}));
  ASSERT_EQ(s.q.size(), 1u);
  EXPECT_EQ(s.q[0].ids, (std::vector<int32_t>{5, 6, 9}));
  EXPECT_TRUE(s.check(10).ok()) << s.check(10).message();
}

TEST(DraftTree, SubsetSkipsEntriesThatBreakTheTree) {
  const DraftTree t = sample_tree();
  // 3's parent 2 is missing, 9 is out of range, the second 0 is a repeat, -1 is invalid.
  const std::vector<int32_t> keep = {-1, 0, 0, 3, 4, 9};
  const DraftTree s = t.subset(keep);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{5}));
  EXPECT_EQ(s.parent, (std::vector<int32_t>{-1}));
  const DraftTree all = t.subset(std::vector<int32_t>{0, 1, 2, 3, 4});
  EXPECT_EQ(all.tokens, t.tokens);
  EXPECT_EQ(all.parent, t.parent);
  EXPECT_EQ(all.q_index, t.q_index);
  EXPECT_EQ(t.subset({}).size(), 0);
}

}  // namespace
}  // namespace dspark::spec
