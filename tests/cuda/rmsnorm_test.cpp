// cuda::rmsnorm against cpu::rmsnorm on random rows.
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

class CudaRmsnorm : public testing::CudaTest {
 protected:
  // Runs both backends on [n, d] and compares. offset shifts x and y by that many floats, which
  // breaks 16-byte alignment and sends the kernel down its scalar path.
  void check(int64_t n, int64_t d, int offset, bool in_place) {
    SCOPED_TRACE(::testing::Message()
                 << "n=" << n << " d=" << d << " offset=" << offset << " in_place=" << in_place);
    const float eps = 1e-6f;
    std::vector<float> x = random_floats(n * d + offset, -3.0f, 3.0f, 100 + d);
    const std::vector<float> weight = random_floats(d, 0.5f, 1.5f, 200 + d);
    std::vector<float> expected(n * d);
    cpu::rmsnorm(x.data() + offset, weight.data(), n, d, eps, expected.data());

    DeviceBuffer dx = upload(x, stream_);
    DeviceBuffer dw = upload(weight, stream_);
    auto dy = DeviceBuffer::allocate((n * d + offset) * sizeof(float));
    ASSERT_TRUE(dy.ok());
    float* out = in_place ? dx.as<float>() + offset : dy->as<float>() + offset;
    const Status status = rmsnorm(dx.as<float>() + offset, dw.as<float>(), n, d, eps, out, stream_);
    ASSERT_TRUE(status.ok()) << status.message();
    const std::vector<float> got = download<float>(out, n * d, stream_);
    // Outputs are O(1); fp32 sums in a different order differ by a few ulp of the row's
    // mean square, so 1e-5 relative (plus 1e-6 absolute near zero) is ample.
    for (int64_t i = 0; i < n * d; ++i) {
      ASSERT_NEAR(got[i], expected[i], 1e-5f * std::fabs(expected[i]) + 1e-6f) << "at " << i;
    }
  }
};

TEST_F(CudaRmsnorm, MatchesCpuOnModelWidths) {
  check(1, 576, 0, false);
  check(7, 896, 0, false);
  check(3, 1536, 0, false);
  check(2, 4096, 0, false);
  check(5, 8192, 0, false);
}

TEST_F(CudaRmsnorm, MatchesCpuOnOddWidthsAndUnalignedRows) {
  check(4, 1001, 0, false);  // d % 4 != 0
  check(3, 64, 1, false);    // unaligned start
  check(1, 7, 0, false);     // narrower than one warp
}

TEST_F(CudaRmsnorm, InPlaceMatchesCpu) {
  check(6, 896, 0, true);
  check(2, 1001, 1, true);
}

TEST_F(CudaRmsnorm, ManyRows) {
  check(3000, 128, 0, false);
}

}  // namespace
}  // namespace dspark::cuda
