#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "dspark/sample.h"

namespace dspark {
namespace {

TEST(Sampler, GreedyPicksFirstMaximum) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  Sampler sampler(SamplingParams{});
  EXPECT_EQ(sampler.sample(logits.data(), 4), 1);
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  std::vector<float> logits = {0.1f, 0.2f, 3.0f, 0.3f};
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  Sampler sampler(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(logits.data(), 4), 2);
}

TEST(Sampler, SameSeedSameTokens) {
  std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  Sampler a(p), b(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(logits.data(), 5), b.sample(logits.data(), 5));
}

// Frequencies of many draws match softmax(logits / T) restricted by the filters, within a
// chi-square bound (df = 3, 0.1% significance: 16.27).
TEST(Sampler, FrequenciesMatchTheFilteredDistribution) {
  std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, -3.0f, -4.0f};
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 5;      // drops id 5
  p.min_p = 0.02f;  // drops id 4 (exp(-4/0.7) ~ 0.003 of the top)
  p.seed = 7;
  Sampler sampler(p);
  std::vector<double> expected(4);
  double total = 0;
  for (int i = 0; i < 4; ++i) total += expected[size_t(i)] = std::exp(logits[size_t(i)] / 0.7);
  const int draws = 40000;
  std::map<int, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[sampler.sample(logits.data(), 6)];
  EXPECT_EQ(counts.count(4) + counts.count(5), 0u);
  double chi2 = 0;
  for (int i = 0; i < 4; ++i) {
    const double e = draws * expected[size_t(i)] / total;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  EXPECT_LT(chi2, 16.27);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.2 (T = 1): top_p 0.7 keeps ids 0 and 1 only.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.7f;
  p.seed = 3;
  Sampler sampler(p);
  int ones = 0;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    int t = sampler.sample(logits.data(), 3);
    ASSERT_NE(t, 2);
    ones += t == 1;
  }
  EXPECT_NEAR(double(ones) / draws, 0.3 / 0.8, 0.02);
}

}  // namespace
}  // namespace dspark
