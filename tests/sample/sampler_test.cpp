#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "sample/reference.h"

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

// Upper 0.1% point of the chi-square distribution with df degrees of freedom (Wilson-Hilferty
// approximation; z = 3.090 is the standard normal's upper 0.1% point).
double chi_square_critical_0_1_percent(int df) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + 3.090 * std::sqrt(a), 3.0);
}

// With penalties, bias and top-p on, the sampled frequencies match the reference processed
// distribution at 0.1% significance.
TEST(Sampler, FrequenciesMatchWithPenaltiesAndTopP) {
  const std::vector<float> logits = {2.0f, 1.5f, 1.0f, 0.8f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f, 1.2f};
  const std::vector<int32_t> prompt = {0, 3, 3};
  const std::vector<int32_t> output = {1, 1, 2, 9};
  const std::vector<int32_t> eos = {8};
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.92f;
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.4f;
  p.frequency_penalty = 0.3f;
  p.logit_bias = {{7, 2.5f}};
  p.seed = 11;
  const std::vector<double> expected =
      ref::distribution(p, ref::adjusted_logits(p, logits, prompt, output, eos));
  int support = 0;
  for (double q : expected) support += q > 0;
  ASSERT_GE(support, 5);   // the test would be weak if top-p left too few ids
  ASSERT_LT(support, 10);  // and top-p must actually drop some

  Sampler sampler(p);
  const TokenHistory history{prompt, output, eos};
  const int draws = 100000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[size_t(sampler.sample(logits.data(), 10, history))];
  double chi2 = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " is outside the nucleus";
      continue;
    }
    const double e = draws * expected[i];
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  EXPECT_LT(chi2, chi_square_critical_0_1_percent(support - 1));
  // The distribution the sampler reports is the one it drew from.
  for (size_t i = 0; i < logits.size(); ++i) {
    EXPECT_NEAR(sampler.last_distribution()[i], expected[i], 1e-6);
  }
}

// A seeded request draws the same tokens whether or not other requests sample in between.
TEST(Sampler, SeededRequestIsUnaffectedByOthers) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> logits(100);
  for (float& l : logits) l = normal(rng);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  p.seed = 1234;
  Sampler alone(p);
  std::vector<int32_t> solo;
  for (int i = 0; i < 200; ++i) solo.push_back(alone.sample(logits.data(), 100));

  Sampler again(p);
  SamplingParams other_params = p;
  other_params.seed = 99;
  other_params.temperature = 1.5f;
  Sampler other(other_params);
  std::vector<int32_t> interleaved, others;
  for (int i = 0; i < 200; ++i) {
    others.push_back(other.sample(logits.data(), 100));
    interleaved.push_back(again.sample(logits.data(), 100));
  }
  EXPECT_EQ(solo, interleaved);
  EXPECT_NE(solo, others);  // a different seed gives a different sequence
}

TEST(Sampler, GreedyHonoursPenaltiesAndBias) {
  const std::vector<float> logits = {3.0f, 2.9f, 1.0f};
  const std::vector<int32_t> output = {0};
  SamplingParams p;
  p.repetition_penalty = 1.2f;  // 3.0 / 1.2 = 2.5 < 2.9
  Sampler sampler(p);
  EXPECT_EQ(sampler.sample(logits.data(), 3, TokenHistory{{}, output, {}}), 1);
  p.logit_bias = {{2, 5.0f}};
  Sampler biased(p);
  EXPECT_EQ(biased.sample(logits.data(), 3), 2);
}

// Greedy parameters take the argmax directly; the token is the one-hot processed distribution's
// (NaN as -inf, first maximum), and the generator advances by one draw as through sample_from.
TEST(Sampler, GreedyShortcutMatchesTheProcessedDistribution) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(64);
    for (float& l : logits) l = normal(rng);
    if (trial % 3 == 0) logits[size_t(trial % 64)] = nan;
    if (trial % 5 == 0) logits[size_t((trial * 7) % 64)] = inf;
    if (trial % 7 == 0) logits[size_t((trial * 3) % 64)] = logits[size_t((trial * 5) % 64)];
    SamplingParams p;
    p.seed = uint64_t(trial);
    if (trial % 2 == 0) p.top_k = 1, p.temperature = 0.8f;
    std::vector<float> probs;
    processed_distribution(p, logits.data(), 64, &probs);
    const auto expected = std::max_element(probs.begin(), probs.end()) - probs.begin();
    Sampler sampler(p), fresh(p);
    EXPECT_EQ(sampler.sample(logits.data(), 64), expected) << "trial " << trial;
    (void)fresh.uniform();
    EXPECT_EQ(sampler.uniform(), fresh.uniform()) << "trial " << trial;
  }
  // Nothing finite to take: the uniform fallback still draws a valid id.
  const std::vector<float> all_nan(8, nan);
  Sampler sampler{SamplingParams{}};
  const int32_t id = sampler.sample(all_nan.data(), 8);
  EXPECT_GE(id, 0);
  EXPECT_LT(id, 8);
}

TEST(Sampler, SampleFromDrawsOnlyPossibleIds) {
  Sampler sampler(SamplingParams{1.0f, 0, 1.0f, 0.0f, 8});
  const std::vector<float> probs = {0.0f, 0.25f, 0.0f, 0.75f, 0.0f};
  int threes = 0;
  for (int i = 0; i < 4000; ++i) {
    const int32_t t = sampler.sample_from(probs);
    ASSERT_TRUE(t == 1 || t == 3) << t;
    threes += t == 3;
  }
  EXPECT_NEAR(threes / 4000.0, 0.75, 0.03);
}

}  // namespace
}  // namespace dspark
