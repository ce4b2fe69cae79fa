#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

constexpr int32_t kDepth = 4;

double logit(double c) {
  return std::log(c / (1.0 - c));
}
double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// Rounds where a draft at raw confidence c is really accepted with probability
// sigmoid(logit(c) / true_t): verification stops at the first rejection.
void feed(Calibrator& cal, int rounds, double true_t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> conf(0.5, 0.999);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int r = 0; r < rounds; ++r) {
    std::vector<float> raw(kDepth);
    int32_t accepted = 0;
    bool alive = true;
    for (int32_t k = 0; k < kDepth; ++k) {
      raw[static_cast<size_t>(k)] = static_cast<float>(conf(rng));
      const bool ok = u01(rng) < sigmoid(logit(raw[static_cast<size_t>(k)]) / true_t);
      alive = alive && ok;
      accepted += alive ? 1 : 0;
    }
    cal.observe(raw, accepted);
  }
}

TEST(Calibrator, StartsAsIdentity) {
  const Calibrator cal(kDepth);
  EXPECT_EQ(cal.n_rounds(), 0);
  EXPECT_EQ(cal.ece(), 0.0);
  for (int32_t k = 1; k <= kDepth; ++k) {
    EXPECT_EQ(cal.temperature(k), 1.0);
    EXPECT_EQ(cal.bias(k), 0.0);
  }
  EXPECT_NEAR(cal.calibrate(1, 0.3f), 0.3f, 1e-6);
  EXPECT_NEAR(cal.calibrate(kDepth + 5, 0.9f), 0.9f, 1e-6);  // depth clamped
}

TEST(Calibrator, FitsOverConfidentDrafterNearTemperatureTwo) {
  Calibrator cal(kDepth, 0);  // refit only when asked
  feed(cal, Calibrator::kCapacity, 2.0, 1);
  const double raw_ece = cal.ece();
  const auto t0 = std::chrono::steady_clock::now();
  cal.refit();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double fitted_ece = cal.ece();
  std::printf(
      "raw ECE %.4f, fitted ECE %.4f, T = %.3f %.3f %.3f %.3f, b = %.3f %.3f, refit %.1f ms\n",
      raw_ece, fitted_ece, cal.temperature(1), cal.temperature(2), cal.temperature(3),
      cal.temperature(4), cal.bias(1), cal.bias(2), seconds * 1e3);
  EXPECT_GT(raw_ece, 0.05);
  EXPECT_LT(fitted_ece, raw_ece / 3.0);
  EXPECT_NEAR(cal.temperature(1), 2.0, 0.3);
  EXPECT_NEAR(cal.temperature(2), 2.0, 0.4);  // fewer rounds reach depth 2
  EXPECT_NEAR(cal.bias(1), 0.0, 0.3);         // the data has no shift to find
  // Over-confidence is pulled toward 1/2 on both sides.
  EXPECT_LT(cal.calibrate(1, 0.95f), 0.9f);
  EXPECT_GT(cal.calibrate(1, 0.05f), 0.1f);
}

TEST(Calibrator, CalibratedDrafterStaysNearIdentity) {
  Calibrator cal(kDepth, 0);
  feed(cal, Calibrator::kCapacity, 1.0, 2);
  const double raw_ece = cal.ece();
  cal.refit();
  EXPECT_NEAR(cal.temperature(1), 1.0, 0.15);
  EXPECT_NEAR(cal.temperature(2), 1.0, 0.25);
  EXPECT_LT(cal.ece(), 0.03);
  EXPECT_LE(cal.ece(), raw_ece + 0.005);
}

// Prompt lookup on prose: confident (raw 0.6-0.75) and usually wrong (a node is accepted 16% of
// the time whatever its raw confidence). A temperature alone keeps raw > 0.5 above 0.5; the
// bias brings the calibrated confidence down to the observed rate.
TEST(Calibrator, BiasCorrectsAConfidentButWrongDrafter) {
  Calibrator cal(kDepth, 0);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> conf(0.6, 0.75);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int r = 0; r < 400; ++r) {
    std::vector<float> raw;
    int32_t accepted = 0;
    for (int32_t k = 0; k < kDepth; ++k) {
      raw.push_back(static_cast<float>(conf(rng)));
      if (u01(rng) >= 0.16) break;  // the walk stops at the first rejected node
      ++accepted;
    }
    cal.observe(raw, accepted);
  }
  const double raw_ece = cal.ece();
  cal.refit();
  EXPECT_GT(raw_ece, 0.3);
  EXPECT_LT(cal.ece(), 0.05);
  EXPECT_NEAR(cal.calibrate(1, 0.67f), 0.16, 0.04);
  EXPECT_LT(cal.bias(1), -1.0);
}

TEST(Calibrator, IsRankPreserving) {
  Calibrator cal(kDepth, 0);
  feed(cal, 2000, 2.0, 3);
  cal.refit();
  for (int32_t k = 1; k <= kDepth; ++k) {
    float last = -1.0f;
    for (int i = 0; i <= 100; ++i) {
      const float c = cal.calibrate(k, static_cast<float>(i) / 100.0f);
      EXPECT_GE(c, 0.0f);
      EXPECT_LE(c, 1.0f);
      EXPECT_GE(c, last) << "depth " << k << " raw " << i / 100.0;
      last = c;
    }
  }
}

TEST(Calibrator, RefitsEarlyThenEveryNRoundsWithBoundedMemory) {
  Calibrator cal(kDepth, 64);
  feed(cal, Calibrator::kMinRounds - 1, 2.0, 4);
  EXPECT_EQ(cal.temperature(1), 1.0);  // no refit yet
  feed(cal, 1, 2.0, 5);
  EXPECT_NE(cal.temperature(1), 1.0);  // the 32nd round refits early
  // Past refit_every rounds, only every refit_every-th round refits (here at 32 early, then at
  // 96, 160, ...): 64 rounds of a drafter that became well calibrated (T = 1) move the fit
  // only on the last of them.
  Calibrator late(kDepth, 64);
  feed(late, 96, 2.0, 8);
  const double fitted = late.temperature(1);
  feed(late, 63, 1.0, 9);
  EXPECT_EQ(late.temperature(1), fitted);
  feed(late, 1, 1.0, 10);
  EXPECT_LT(late.temperature(1), fitted);
  // More rounds than the ring holds: memory stays at kCapacity rounds, the count goes on.
  Calibrator ring(kDepth, 1024);
  feed(ring, 3 * Calibrator::kCapacity, 2.0, 6);
  EXPECT_EQ(ring.n_rounds(), 3 * Calibrator::kCapacity);
  EXPECT_NEAR(ring.temperature(1), 2.0, 0.45);
}

TEST(Calibrator, TracksADriftingDrafterThroughTheRing) {
  Calibrator cal(kDepth, 1024);
  feed(cal, Calibrator::kCapacity, 2.0, 7);
  EXPECT_NEAR(cal.temperature(1), 2.0, 0.45);
  // Once the ring holds only calibrated rounds, the fit returns to the identity.
  feed(cal, Calibrator::kCapacity, 1.0, 8);
  EXPECT_NEAR(cal.temperature(1), 1.0, 0.15);
}

// ece() is kept up to date as rounds come in, leave the ring and refits change the fit: it
// equals the ECE recomputed from scratch over the rounds the ring holds.
TEST(Calibrator, EceMatchesARecomputationThroughRingAndRefits) {
  const int32_t depth = 3;
  Calibrator cal(depth, 500);
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> conf(0.05f, 0.95f);
  struct Round {
    std::vector<float> raw;
    int32_t accepted;
  };
  std::vector<Round> rounds;
  for (int r = 0; r < Calibrator::kCapacity + 1500; ++r) {
    Round round{std::vector<float>(size_t(1 + r % depth)), 0};
    for (float& c : round.raw) c = conf(gen);
    round.accepted = int32_t(gen() % (round.raw.size() + 1));
    cal.observe(round.raw, round.accepted);
    rounds.push_back(round);
  }
  std::vector<double> sum_x(Calibrator::kBins, 0.0), sum_y(Calibrator::kBins, 0.0);
  double n = 0;
  for (size_t r = rounds.size() - Calibrator::kCapacity; r < rounds.size(); ++r) {
    double survival = 1.0;
    for (int32_t k = 1; k <= int32_t(rounds[r].raw.size()); ++k) {
      survival *= cal.calibrate(k, rounds[r].raw[size_t(k - 1)]);
      const int b = std::clamp(int(survival * Calibrator::kBins), 0, Calibrator::kBins - 1);
      sum_x[size_t(b)] += survival;
      sum_y[size_t(b)] += rounds[r].accepted >= k ? 1.0 : 0.0;
      n += 1;
    }
  }
  double total = 0.0;
  for (int b = 0; b < Calibrator::kBins; ++b)
    total += std::abs(sum_x[size_t(b)] - sum_y[size_t(b)]);
  EXPECT_NEAR(cal.ece(), total / n, 1e-9);
  EXPECT_GT(cal.ece(), 0.0);
}

TEST(Calibrator, IgnoresEmptyRoundsAndSanitizesInput) {
  Calibrator cal(2, 1);
  cal.observe({}, 0);
  EXPECT_EQ(cal.n_rounds(), 0);
  const std::vector<float> odd = {std::nanf(""), 1.5f, 0.5f};  // longer than max_depth
  cal.observe(odd, 7);
  EXPECT_EQ(cal.n_rounds(), 1);
  EXPECT_TRUE(std::isfinite(cal.ece()));
  EXPECT_TRUE(std::isfinite(cal.calibrate(1, std::nanf(""))));
  EXPECT_EQ(cal.temperature(1), 1.0);  // fewer than kMinRounds rounds: unchanged
  EXPECT_EQ(cal.bias(1), 0.0);
}

}  // namespace
}  // namespace dspark::spec
