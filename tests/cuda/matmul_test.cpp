// Blas::matmul against cpu::matmul_reference for F32, F16 and BF16 weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_test_util.h"
#include "dspark/backend_cpu.h"
#include "dspark/loader.h"

namespace dspark::cuda {
namespace {

using testing::download;
using testing::random_floats;
using testing::upload;

// Weight values stored as `type`: [rows, cols] as raw bytes of that type.
std::vector<uint8_t> encode(const std::vector<float>& values, DType type) {
  std::vector<uint8_t> bytes;
  if (type == DType::F32) {
    bytes.resize(values.size() * 4);
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  }
  std::vector<uint16_t> half(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    half[i] = type == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
  }
  bytes.resize(half.size() * 2);
  std::memcpy(bytes.data(), half.data(), bytes.size());
  return bytes;
}

// Relative rounding of x to the weight's type, which the device applies before multiplying.
double input_rounding(DType type) {
  switch (type) {
    case DType::F16:
      return std::ldexp(1.0, -11);
    case DType::BF16:
      return std::ldexp(1.0, -8);
    default:
      return 0.0;
  }
}

class CudaMatmul : public testing::CudaTest {
 protected:
  void SetUp() override {
    testing::CudaTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto blas = Blas::create();
    ASSERT_TRUE(blas.ok()) << blas.error().message;
    blas_ = std::move(blas.value());
  }

  void check(DType type, int64_t n_tok, int64_t rows, int64_t cols) {
    SCOPED_TRACE(::testing::Message() << "type=" << static_cast<int>(type) << " n_tok=" << n_tok
                                      << " rows=" << rows << " cols=" << cols);
    const std::vector<float> w = random_floats(rows * cols, -1.0f, 1.0f, 500 + cols);
    const std::vector<float> x = random_floats(n_tok * cols, -2.0f, 2.0f, 600 + n_tok);
    const std::vector<uint8_t> w_bytes = encode(w, type);
    const uint64_t row_bytes = w_bytes.size() / rows;

    cpu::WeightView view;
    view.type = type;
    view.rows = rows;
    view.cols = cols;
    view.data = w_bytes.data();
    view.row_bytes = row_bytes;
    std::vector<float> expected(n_tok * rows);
    cpu::matmul_reference(view, x.data(), n_tok, expected.data());

    DeviceBuffer dw = upload(w_bytes, stream_);
    DeviceBuffer dx = upload(x, stream_);
    auto dy = DeviceBuffer::allocate(n_tok * rows * sizeof(float));
    ASSERT_TRUE(dy.ok());
    const DeviceWeight weight{type, rows, cols, dw.data()};
    const Status status = blas_.matmul(weight, dx.as<float>(), n_tok, dy->as<float>(), stream_);
    ASSERT_TRUE(status.ok()) << status.message();
    const std::vector<float> got = download<float>(dy->data(), n_tok * rows, stream_);

    // Error bound per output: rounding x to the weight type moves each product by at most
    // u * |w x|; fp32 accumulation in another order adds a few ulp of sum |w x| (2e-5 covers
    // sqrt(cols)-sized random error many times over).
    const double u = input_rounding(type);
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double abs_sum = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          abs_sum += std::fabs(double(x[t * cols + c]) * stored(w_bytes, type, r * cols + c));
        }
        const double tolerance = (u + 2e-5) * abs_sum + 1e-6;
        ASSERT_NEAR(got[t * rows + r], expected[t * rows + r], tolerance)
            << "token " << t << " row " << r;
      }
    }
  }

  // Element i of the encoded weights, as the device sees it.
  static double stored(const std::vector<uint8_t>& bytes, DType type, int64_t i) {
    if (type == DType::F32) {
      float v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      return v;
    }
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    return type == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
  }

  Blas blas_;
};

TEST_F(CudaMatmul, F32MatchesCpu) {
  check(DType::F32, 1, 300, 896);
  check(DType::F32, 16, 257, 896);
  check(DType::F32, 5, 64, 77);
}

TEST_F(CudaMatmul, F16MatchesCpu) {
  check(DType::F16, 1, 300, 896);
  check(DType::F16, 8, 4864, 896);
  check(DType::F16, 16, 130, 1536);
  check(DType::F16, 3, 31, 77);
}

TEST_F(CudaMatmul, Bf16MatchesCpu) {
  check(DType::BF16, 1, 300, 896);
  check(DType::BF16, 16, 257, 1536);
  check(DType::BF16, 3, 31, 77);
}

// The scratch for rounded inputs grows between calls of one Blas: later, larger calls must not
// read a stale or short buffer.
TEST_F(CudaMatmul, ScratchGrowsAcrossCalls) {
  check(DType::F16, 1, 64, 128);
  check(DType::F16, 32, 64, 2048);
  check(DType::F16, 2, 64, 128);
}

TEST_F(CudaMatmul, EmptyInnerDimensionGivesZeros) {
  auto dy = DeviceBuffer::allocate(3 * 5 * sizeof(float));
  ASSERT_TRUE(dy.ok());
  DeviceBuffer garbage = upload(std::vector<float>(15, 7.0f), stream_);
  ASSERT_TRUE(copy_on_device(dy->data(), garbage.data(), garbage.size(), stream_).ok());
  float* unused = garbage.as<float>();  // any valid device pointer: nothing is read
  const DeviceWeight weight{DType::F16, 5, 0, unused};
  ASSERT_TRUE(blas_.matmul(weight, unused, 3, dy->as<float>(), stream_).ok());
  EXPECT_EQ(download<float>(dy->data(), 15, stream_), std::vector<float>(15, 0.0f));
}

TEST_F(CudaMatmul, QuantizedWeightsAreRejected) {
  auto buffer = DeviceBuffer::allocate(64);
  ASSERT_TRUE(buffer.ok());
  float* any = buffer->as<float>();
  const DeviceWeight weight{DType::Q4_1, 4, 32, any};
  const Status status = blas_.matmul(weight, any, 1, any, stream_);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("not F32, F16 or BF16"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace dspark::cuda
