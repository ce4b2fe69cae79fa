// Shared pieces of the CUDA tests: a fixture that skips without a device, host<->device helpers
// and seeded random data.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dspark/backend_cuda.h"

namespace dspark::cuda::testing {

// Tests that need a device derive from this. Without one they are skipped with the reason
// from cudaGetDeviceCount, or fail when DSPARK_REQUIRE_CUDA=1 (set by scripts/gpu_check.sh on
// a machine that should have one).
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda_available(&why)) return;
    const char* require = std::getenv("DSPARK_REQUIRE_CUDA");
    if (require && std::strcmp(require, "1") == 0) {
      FAIL() << "no CUDA device (DSPARK_REQUIRE_CUDA=1): " << why;
    }
    GTEST_SKIP() << "no CUDA device: " << why;
  }

  Stream stream_;  // the legacy default stream
};

template <class T>
DeviceBuffer upload(const std::vector<T>& host, const Stream& stream) {
  auto buffer = DeviceBuffer::allocate(host.size() * sizeof(T));
  EXPECT_TRUE(buffer.ok()) << buffer.error().message;
  if (!buffer.ok()) return DeviceBuffer();
  const Status copied =
      copy_to_device(buffer->data(), host.data(), host.size() * sizeof(T), stream);
  EXPECT_TRUE(copied.ok()) << copied.message();
  return std::move(buffer.value());
}

template <class T>
std::vector<T> download(const void* device, size_t count, const Stream& stream) {
  std::vector<T> host(count);
  const Status copied = copy_to_host(host.data(), device, count * sizeof(T), stream);
  EXPECT_TRUE(copied.ok()) << copied.message();
  return host;
}

inline std::vector<float> random_floats(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace dspark::cuda::testing
