// The start-up profile cache: what a start times, how timings are averaged (a noisy sample
// fades), the rotation, the file format's round trip and its errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/profile_cache.h"

namespace dspark::engine {
namespace {

const std::vector<int32_t> kSizes = {1, 2, 4, 8};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("dspark-profile-test-" + std::to_string(::getpid()) + "/" + name))
      .string();
}

TEST(ProfileCache, ColdStartTimesEverySizeThenWarmStartsThreeInRotation) {
  ProfileRecord r;
  EXPECT_EQ(sizes_to_time(r, kSizes), std::vector<bool>(4, true));
  fold_profile(r, kSizes, {1.0, 1.2, 1.5, 2.0});
  EXPECT_EQ(r.sizes, kSizes);
  EXPECT_DOUBLE_EQ(r.ratios[3], 2.0);
  // Then 1, 2 and one of the larger sizes, largest first, cycling.
  EXPECT_EQ(sizes_to_time(r, kSizes), (std::vector<bool>{true, true, false, true}));
  fold_profile(r, kSizes, {1.0, 1.2, 0.0, 2.0});
  EXPECT_EQ(sizes_to_time(r, kSizes), (std::vector<bool>{true, true, true, false}));
  fold_profile(r, kSizes, {1.0, 1.2, 1.5, 0.0});
  EXPECT_EQ(sizes_to_time(r, kSizes), (std::vector<bool>{true, true, false, true}));
  // Other sizes (another batch cap): everything again, from scratch.
  EXPECT_EQ(sizes_to_time(r, {1, 2, 4}), std::vector<bool>(3, true));
  fold_profile(r, {1, 2, 4}, {2.0, 2.0, 4.0});
  EXPECT_EQ(r.sizes, (std::vector<int32_t>{1, 2, 4}));
  EXPECT_DOUBLE_EQ(r.ratios[2], 2.0);
  EXPECT_EQ(r.samples, (std::vector<int32_t>{1, 1, 1}));
}

TEST(ProfileCache, AnUnluckySampleFadesAndTheTableNeverSlopesDown) {
  // The cold start saw forward(2) as dear as forward(1) (a real cached profile once did); each
  // start re-times size 2 at its usual 1.15x, which pulls the average there.
  ProfileRecord r;
  fold_profile(r, kSizes, {0.10, 0.10, 0.16, 0.25});
  for (int start = 0; start < 20; ++start) fold_profile(r, kSizes, {0.20, 0.23, 0.0, 0.0});
  EXPECT_NEAR(r.ratios[1], 1.15, 0.01);
  EXPECT_EQ(r.samples[1], ProfileRecord::kMaxSamples);
  // Untimed sizes keep their ratio; latencies scale by this start's one-token time.
  EXPECT_DOUBLE_EQ(r.ratios[2], 1.6);
  const std::vector<double> lat = profile_latencies(r, 0.5);
  EXPECT_NEAR(lat[1], 0.575, 0.005);
  EXPECT_DOUBLE_EQ(lat[2], 0.8);
  // A ratio below a smaller size's is held up to it.
  r.ratios = {1.0, 1.3, 1.2, 2.0};
  const std::vector<double> held = profile_latencies(r, 1.0);
  EXPECT_DOUBLE_EQ(held[2], 1.3);
}

TEST(ProfileCache, FileRoundTripAndErrors) {
  const std::string path = temp_path("sps-x.target");
  auto absent = read_profile(path);
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->sizes.empty());

  ProfileRecord r;
  fold_profile(r, kSizes, {0.01, 0.0117, 0.015, 0.0213});
  ASSERT_TRUE(write_profile(path, r).ok());  // creates the folder
  auto back = read_profile(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->sizes, r.sizes);
  EXPECT_EQ(back->samples, r.samples);
  EXPECT_EQ(back->next, r.next);
  for (size_t i = 0; i < r.ratios.size(); ++i) EXPECT_DOUBLE_EQ(back->ratios[i], r.ratios[i]);

  for (const std::string bad :
       {"", "something else 1\n", "dspark-sps-profile 2\nnext 0\n1 1 1\n",
        "dspark-sps-profile 1\n1 1 1\n", "dspark-sps-profile 1\nnext 0\n2 1 1\n",
        "dspark-sps-profile 1\nnext 0\n1 1 1\n2 nan 1\n", "dspark-sps-profile 1\nnext 5\n1 1 1\n",
        "dspark-sps-profile 1\nnext 0\n1 1 1\n4 2 1\n2 1.5 1\n",
        "dspark-sps-profile 1\nnext 0\n1 1 1\n2 1.1 0\n",
        "dspark-sps-profile 1\nnext 0\n1 1 1\nx\n"}) {
    std::ofstream(path, std::ios::trunc) << bad;
    EXPECT_FALSE(read_profile(path).ok()) << bad;
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

}  // namespace
}  // namespace dspark::engine
