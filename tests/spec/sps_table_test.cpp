#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {
namespace {

SpsTable table() {
  return SpsTable({1, 4, 8}, {0.010, 0.016, 0.032});
}

TEST(SpsTable, ProfiledSizesGiveInverseLatency) {
  const SpsTable t = table();
  EXPECT_EQ(t.sizes(), (std::vector<int32_t>{1, 4, 8}));
  EXPECT_DOUBLE_EQ(t.sps(1), 100.0);
  EXPECT_DOUBLE_EQ(t.sps(4), 62.5);
  EXPECT_DOUBLE_EQ(t.sps(8), 31.25);
}

TEST(SpsTable, InterpolatesLatencyNotSps) {
  const SpsTable t = table();
  // Latency at 2: 0.010 + 1/3 * 0.006 = 0.012 -> 83.33 steps/s (interpolating SPS gives 87.5).
  EXPECT_NEAR(t.latency(2), 0.012, 1e-12);
  EXPECT_NEAR(t.sps(2), 1.0 / 0.012, 1e-9);
  EXPECT_NEAR(t.latency(6), 0.024, 1e-12);
}

TEST(SpsTable, ExtrapolatesBeyondLastAndClampsBelowFirst) {
  const SpsTable t = table();
  EXPECT_NEAR(t.latency(12), 0.048, 1e-12);  // slope 0.004 per token from the last two
  EXPECT_NEAR(t.sps(12), 1.0 / 0.048, 1e-9);
  EXPECT_DOUBLE_EQ(t.latency(0), 0.010);
  EXPECT_DOUBLE_EQ(t.latency(-3), 0.010);
  // A last segment sloping down would make big batches look free: it is held flat.
  const SpsTable down({1, 2}, {0.02, 0.01});
  EXPECT_DOUBLE_EQ(down.latency(10), 0.01);
}

TEST(SpsTable, ObserveScalesTheWholeTable) {
  SpsTable t = table();
  // Size 5 is predicted at 0.020 (between 4 at 0.016 and 8 at 0.032); a step 30% slower than
  // that moves every size 3% (kAlpha of the 30%) up, keeping their ratios.
  t.observe(5, 0.026);
  EXPECT_NEAR(t.latency(1), 0.010 * 1.03, 1e-12);
  EXPECT_NEAR(t.latency(4), 0.016 * 1.03, 1e-12);
  EXPECT_NEAR(t.latency(8), 0.032 * 1.03, 1e-12);
  // A size the live steps never reach follows the machine all the same: steps at size 1 only,
  // 50% slower than profiled, leave size 8 twice size 4 and both 50% slower.
  SpsTable small = table();
  for (int i = 0; i < 300; ++i) small.observe(1, 0.015);
  EXPECT_NEAR(small.latency(1), 0.015, 1e-8);
  EXPECT_NEAR(small.latency(4), 0.024, 1e-8);
  EXPECT_NEAR(small.latency(8), 0.048, 1e-8);
  // Beyond the last size (a long prefill step): ignored.
  const double last = t.latency(8);
  t.observe(100, 0.5);
  EXPECT_DOUBLE_EQ(t.latency(8), last);
  // Bad measurements are ignored.
  const double before = t.latency(1);
  t.observe(1, -1.0);
  t.observe(1, 0.0);
  t.observe(1, std::nan(""));
  t.observe(1, INFINITY);
  EXPECT_DOUBLE_EQ(t.latency(1), before);
}

TEST(SpsTable, RepeatedObservationsConverge) {
  SpsTable t = table();
  for (int i = 0; i < 200; ++i) t.observe(8, 0.050);
  EXPECT_NEAR(t.latency(8), 0.050, 1e-8);
}

TEST(SpsTable, DropsInvalidEntries) {
  const SpsTable t({0, 2, 2, 5, 3, 8, 9}, {1.0, 0.01, 0.5, std::nan(""), 0.02, 0.04});
  EXPECT_EQ(t.sizes(), (std::vector<int32_t>{2, 3, 8}));
  EXPECT_DOUBLE_EQ(t.latency(3), 0.02);
}

TEST(SpsTable, DegenerateTables) {
  SpsTable empty({}, {});
  EXPECT_EQ(empty.sps(4), 0.0);
  EXPECT_EQ(empty.latency(4), 0.0);
  empty.observe(4, 0.01);
  EXPECT_EQ(empty.sps(4), 0.0);
  const SpsTable single({4}, {0.02});
  EXPECT_DOUBLE_EQ(single.sps(1), 50.0);
  EXPECT_DOUBLE_EQ(single.sps(100), 50.0);
}

}  // namespace
}  // namespace dspark::spec
