// Each processing step against the reference in reference.h on random logits, plus logprobs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "sample/reference.h"

namespace dspark {
namespace {

constexpr int64_t kVocab = 64;

std::vector<float> random_logits(std::mt19937& rng, int64_t vocab) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& l : logits) l = normal(rng);
  return logits;
}

std::vector<int32_t> random_ids(std::mt19937& rng, size_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> id(0, int32_t(vocab - 1));
  std::vector<int32_t> ids(n);
  for (int32_t& t : ids) t = id(rng);
  return ids;
}

TEST(LogitsProcessors, MatchReferenceOnRandomLogits) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int trial = 0; trial < 300; ++trial) {
    SamplingParams p;
    p.repetition_penalty = 0.5f + 1.5f * unit(rng);
    p.presence_penalty = -2.0f + 4.0f * unit(rng);
    p.frequency_penalty = -2.0f + 4.0f * unit(rng);
    for (int32_t id : random_ids(rng, 5, kVocab))
      p.logit_bias.emplace_back(id, -5 + 10 * unit(rng));
    p.stop_token_ids = random_ids(rng, 2, kVocab);
    p.min_tokens = int32_t(unit(rng) * 20);
    p.ignore_eos = trial % 2 == 0;
    const std::vector<int32_t> prompt = random_ids(rng, 12, kVocab);
    const std::vector<int32_t> output = random_ids(rng, size_t(unit(rng) * 30), kVocab);
    const std::vector<int32_t> eos = {int32_t(kVocab - 1)};
    std::vector<float> logits = random_logits(rng, kVocab);
    const std::vector<double> want = ref::adjusted_logits(p, logits, prompt, output, eos);
    apply_logits_processors(p, TokenHistory{prompt, output, eos}, logits.data(), kVocab);
    for (size_t i = 0; i < logits.size(); ++i) {
      if (std::isinf(want[i])) {
        EXPECT_EQ(logits[i], float(want[i])) << "trial " << trial << " id " << i;
      } else {
        EXPECT_NEAR(logits[i], want[i], 1e-4 * (1 + std::fabs(want[i])))
            << "trial " << trial << " id " << i;
      }
    }
  }
}

TEST(LogitsProcessors, MinTokensBlocksStopIdsUntilEnoughGenerated) {
  SamplingParams p;
  p.min_tokens = 2;
  p.stop_token_ids = {3};
  const std::vector<int32_t> eos = {5};
  const std::vector<int32_t> one = {0}, two = {0, 1};
  std::vector<float> logits(6, 1.0f);
  apply_logits_processors(p, TokenHistory{{}, one, eos}, logits.data(), 6);
  EXPECT_EQ(logits[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(logits[5], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(logits[4], 1.0f);
  std::vector<float> later(6, 1.0f);
  apply_logits_processors(p, TokenHistory{{}, two, eos}, later.data(), 6);
  EXPECT_EQ(later, std::vector<float>(6, 1.0f));
  p.ignore_eos = true;
  std::vector<float> ignoring(6, 1.0f);
  apply_logits_processors(p, TokenHistory{{}, one, eos}, ignoring.data(), 6);
  EXPECT_EQ(ignoring[5], 1.0f);
}

TEST(LogitsProcessors, HistoryIdsOutsideTheVocabularyAreIgnored) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  const std::vector<int32_t> prompt = {-1, 100}, output = {7, -3};
  std::vector<float> logits(4, 1.0f);
  apply_logits_processors(p, TokenHistory{prompt, output, {}}, logits.data(), 4);
  EXPECT_EQ(logits, std::vector<float>(4, 1.0f));
}

// Where logits_processors_active says no, the processors leave every logit as it was (greedy
// picks then read the raw row); each processor on its own, and min_tokens until it is met, is
// active.
TEST(LogitsProcessors, InactiveMeansUnchanged) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> coin(0, 4);
  int inactive = 0, active = 0;
  for (int trial = 0; trial < 400; ++trial) {
    SamplingParams p;
    if (coin(rng) == 0) p.repetition_penalty = 1.3f;
    if (coin(rng) == 0) p.presence_penalty = 0.5f;
    if (coin(rng) == 0) p.frequency_penalty = -0.5f;
    if (coin(rng) == 0) p.logit_bias.emplace_back(int32_t(trial % kVocab), 2.0f);
    if (coin(rng) == 0) p.min_tokens = 4;
    p.stop_token_ids = random_ids(rng, 2, kVocab);
    const std::vector<int32_t> prompt = random_ids(rng, 12, kVocab);
    const std::vector<int32_t> output = random_ids(rng, size_t(coin(rng) * 2), kVocab);
    const std::vector<int32_t> eos = {int32_t(kVocab - 1)};
    const std::vector<float> logits = random_logits(rng, kVocab);
    std::vector<float> processed = logits;
    apply_logits_processors(p, TokenHistory{prompt, output, eos}, processed.data(), kVocab);
    if (logits_processors_active(p, int64_t(output.size()))) {
      ++active;
    } else {
      ++inactive;
      EXPECT_EQ(processed, logits) << "trial " << trial;
    }
  }
  EXPECT_GT(inactive, 50);
  EXPECT_GT(active, 50);
  SamplingParams p;
  EXPECT_FALSE(logits_processors_active(p, 0));
  p.min_tokens = 3;
  EXPECT_TRUE(logits_processors_active(p, 2));
  EXPECT_FALSE(logits_processors_active(p, 3));
  p.repetition_penalty = 1.1f;
  EXPECT_TRUE(logits_processors_active(p, 3));
}

TEST(ProcessedDistribution, MatchesReferenceOnRandomLogits) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const int32_t ks[] = {0, -1, 1, 2, 5, 17, 63, 64, 100};
  for (int trial = 0; trial < 500; ++trial) {
    SamplingParams p;
    p.temperature = trial % 10 == 0 ? 0.0f : 0.05f + 1.95f * unit(rng);
    p.top_k = ks[size_t(trial) % std::size(ks)];
    p.top_p = trial % 3 == 0 ? 1.0f : 0.05f + 0.95f * unit(rng);
    p.min_p = trial % 4 == 0 ? 0.0f : 0.3f * unit(rng);
    const std::vector<float> logits = random_logits(rng, kVocab);
    const std::vector<double> want =
        ref::distribution(p, std::vector<double>(logits.begin(), logits.end()));
    std::vector<float> got;
    processed_distribution(p, logits.data(), kVocab, &got);
    ASSERT_EQ(got.size(), size_t(kVocab));
    double total = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      total += got[i];
      EXPECT_NEAR(got[i], want[i], 1e-5) << "trial " << trial << " id " << i;
      // Filtered ids are exactly 0; kept ones are positive unless they underflow float.
      if (want[i] == 0.0) {
        EXPECT_EQ(got[i], 0.0f) << "trial " << trial << " id " << i;
      } else if (want[i] > 1e-30) {
        EXPECT_GT(got[i], 0.0f) << "trial " << trial << " id " << i;
      }
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}

// A flat distribution over a large vocabulary puts thousands of ids in the nucleus, past the
// first prefix the implementation sorts.
TEST(ProcessedDistribution, LargeNucleusMatchesReference) {
  std::mt19937 rng(6);
  const int64_t vocab = 5000;
  for (float top_p : {0.3f, 0.9f, 0.999f}) {
    std::normal_distribution<float> normal(0.0f, 0.5f);
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float& l : logits) l = normal(rng);
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = top_p;
    const std::vector<double> want =
        ref::distribution(p, std::vector<double>(logits.begin(), logits.end()));
    std::vector<float> got;
    processed_distribution(p, logits.data(), vocab, &got);
    size_t kept = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      kept += got[i] > 0;
      EXPECT_NEAR(got[i], want[i], 1e-7) << "top_p " << top_p << " id " << i;
      EXPECT_EQ(got[i] == 0.0f, want[i] == 0.0) << "top_p " << top_p << " id " << i;
    }
    EXPECT_GT(kept, 256u) << "top_p " << top_p;
  }
}

TEST(ProcessedDistribution, GreedyIsOneHotOnTheFirstMaximum) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  std::vector<float> probs;
  processed_distribution(SamplingParams{}, logits.data(), 4, &probs);
  EXPECT_EQ(probs, (std::vector<float>{0.0f, 1.0f, 0.0f, 0.0f}));
}

TEST(ProcessedDistribution, NanNeverChosenAndAllBlockedIsUniform) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  SamplingParams p;
  p.temperature = 1.0f;
  std::vector<float> probs;
  const std::vector<float> with_nan = {nan, 0.0f, 0.0f};
  processed_distribution(p, with_nan.data(), 3, &probs);
  EXPECT_EQ(probs, (std::vector<float>{0.0f, 0.5f, 0.5f}));
  const std::vector<float> blocked = {-inf, -inf, nan, -inf};
  processed_distribution(p, blocked.data(), 4, &probs);
  EXPECT_EQ(probs, std::vector<float>(4, 0.25f));
}

TEST(Logprobs, MatchLogSoftmaxWithStableTieOrder) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> logits = random_logits(rng, kVocab);
    logits[10] = logits[20] = logits[30] = 9.0f;  // a three-way tie at the top
    double z = 0;
    for (float l : logits) z += std::exp(double(l));
    const TokenLogprobs lp = compute_logprobs(logits.data(), kVocab, 20, 5);
    EXPECT_EQ(lp.token, 20);
    EXPECT_NEAR(lp.logprob, 9.0 - std::log(z), 1e-5);
    ASSERT_EQ(lp.top.size(), 5u);
    EXPECT_EQ(lp.top[0].first, 10);
    EXPECT_EQ(lp.top[1].first, 20);
    EXPECT_EQ(lp.top[2].first, 30);
    for (size_t i = 0; i < lp.top.size(); ++i) {
      EXPECT_NEAR(lp.top[i].second, logits[size_t(lp.top[i].first)] - std::log(z), 1e-5);
      if (i > 0) {
        EXPECT_LE(lp.top[i].second, lp.top[i - 1].second);
      }
    }
  }
}

TEST(Logprobs, ClampsKAndHandlesBadTokens) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {0.0f, -inf, 0.0f};
  const TokenLogprobs lp = compute_logprobs(logits.data(), 3, 1, 20);
  EXPECT_EQ(lp.logprob, -inf);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_NEAR(lp.top[0].second, std::log(0.5), 1e-6);
  EXPECT_EQ(lp.top[2].first, 1);
  EXPECT_EQ(compute_logprobs(logits.data(), 3, 7, 0).logprob, -inf);
  EXPECT_TRUE(compute_logprobs(logits.data(), 3, 0, 0).top.empty());
}

}  // namespace
}  // namespace dspark
