// cuda::silu_mul against cpu::silu_mul.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "dspark/backend_cpu.h"

namespace dspark::cuda {
namespace {

using testing::download;
using testing::random_floats;
using testing::upload;

class CudaSiluMul : public testing::CudaTest {
 protected:
  void check(int64_t n, bool in_place) {
    SCOPED_TRACE(::testing::Message() << "n=" << n << " in_place=" << in_place);
    // Gates far into both tails: exp overflows for large negative inputs and silu -> 0.
    std::vector<float> gate = random_floats(n, -30.0f, 30.0f, 300 + n);
    const std::vector<float> up = random_floats(n, -4.0f, 4.0f, 400 + n);
    if (n >= 4) {
      gate[0] = 0.0f;
      gate[1] = -100.0f;
      gate[2] = 100.0f;
      gate[3] = -1e-8f;
    }
    std::vector<float> expected(n);
    cpu::silu_mul(gate.data(), up.data(), n, expected.data());

    DeviceBuffer dg = upload(gate, stream_);
    DeviceBuffer du = upload(up, stream_);
    auto dy = DeviceBuffer::allocate(n * sizeof(float));
    ASSERT_TRUE(dy.ok());
    float* out = in_place ? dg.as<float>() : dy->as<float>();
    const Status status = silu_mul(dg.as<float>(), du.as<float>(), n, out, stream_);
    ASSERT_TRUE(status.ok()) << status.message();
    const std::vector<float> got = download<float>(out, n, stream_);
    // expf is within 2 ulp on the device; a CPU polynomial exp may be a few ulp off too.
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(got[i], expected[i], 1e-5f * std::fabs(expected[i]) + 1e-6f)
          << "at " << i << " gate=" << gate[i] << " up=" << up[i];
    }
  }
};

TEST_F(CudaSiluMul, MatchesCpu) {
  check(1, false);
  check(4864, false);
  check((int64_t(1) << 20) + 5, false);
}

TEST_F(CudaSiluMul, InPlaceMatchesCpu) {
  check(8960, true);
}

// More elements than the capped grid covers in one pass: the grid-stride loop takes the rest.
TEST_F(CudaSiluMul, BeyondOneGridPass) {
  check(int64_t(65535) * 256 + 1000, false);
}

}  // namespace
}  // namespace dspark::cuda
