// cuda::rope against cpu::rope for both layouts and every frequency scaling.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cuda_test_util.h"
#include "dspark/backend_cpu.h"

namespace dspark::cuda {
namespace {

using testing::download;
using testing::random_floats;
using testing::upload;

using Scaling = RopeParams::Scaling;

class CudaRope : public testing::CudaTest {
 protected:
  void check(const RopeParams& params, int64_t n_tok, int64_t n_heads, int64_t head_dim) {
    SCOPED_TRACE(::testing::Message()
                 << "layout=" << (params.layout == RopeLayout::Neox ? "neox" : "interleaved")
                 << " scaling=" << static_cast<int>(params.scaling)
                 << " rot_dims=" << params.rot_dims << " n_tok=" << n_tok << " n_heads=" << n_heads
                 << " head_dim=" << head_dim);
    const std::vector<float> x = random_floats(n_tok * n_heads * head_dim, -2.0f, 2.0f, 700);
    // Positions 0 and a long-context one, the rest random: large angles test the precision.
    std::vector<int32_t> positions(n_tok);
    std::mt19937 rng(800);
    std::uniform_int_distribution<int32_t> dist(0, 40000);
    for (int32_t& p : positions) p = dist(rng);
    positions[0] = 0;
    if (n_tok > 1) positions[1] = 131071;

    std::vector<float> expected = x;
    cpu::rope(expected.data(), positions.data(), n_tok, n_heads, head_dim, params);

    DeviceBuffer dx = upload(x, stream_);
    DeviceBuffer dp = upload(positions, stream_);
    const Status status =
        rope(dx.as<float>(), dp.as<int32_t>(), n_tok, n_heads, head_dim, params, stream_);
    ASSERT_TRUE(status.ok()) << status.message();
    const std::vector<float> got = download<float>(dx.data(), x.size(), stream_);
    // Both backends take cos/sin of the same double angles rounded to float; what remains is
    // float rounding of the rotation (FMA or not): a few ulp of |x| <= 2 * mscale.
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expected[i], 4e-6f) << "at " << i;
    }
    // Dims past rot_dims are left alone.
    for (int64_t row = 0; row < n_tok * n_heads; ++row) {
      for (int64_t c = params.rot_dims; c < head_dim; ++c) {
        ASSERT_EQ(got[row * head_dim + c], x[row * head_dim + c]);
      }
    }
  }

  static RopeParams make(RopeLayout layout, int rot_dims, Scaling scaling) {
    RopeParams p;
    p.layout = layout;
    p.rot_dims = rot_dims;
    p.theta = 1000000.0f;
    p.scaling = scaling;
    switch (scaling) {
      case Scaling::None:
        break;
      case Scaling::Linear:
        p.factor = 4.0f;
        break;
      case Scaling::Llama3:
        p.theta = 500000.0f;
        p.factor = 8.0f;
        p.low_freq_factor = 1.0f;
        p.high_freq_factor = 4.0f;
        p.original_context = 8192;
        break;
      case Scaling::Yarn:
        p.factor = 4.0f;
        p.original_context = 32768;
        break;
    }
    return p;
  }
};

TEST_F(CudaRope, NeoxMatchesCpu) {
  for (Scaling s : {Scaling::None, Scaling::Linear, Scaling::Llama3, Scaling::Yarn}) {
    check(make(RopeLayout::Neox, 64, s), 9, 14, 64);  // Qwen2.5-0.5B q heads
    check(make(RopeLayout::Neox, 128, s), 3, 2, 128);
  }
}

TEST_F(CudaRope, InterleavedMatchesCpu) {
  for (Scaling s : {Scaling::None, Scaling::Linear, Scaling::Llama3, Scaling::Yarn}) {
    check(make(RopeLayout::Interleaved, 64, s), 9, 3, 64);  // SmolLM2 kv heads
    check(make(RopeLayout::Interleaved, 256, s), 2, 1, 256);
  }
}

TEST_F(CudaRope, PartialRotationLeavesTheRestAlone) {
  check(make(RopeLayout::Neox, 32, Scaling::None), 5, 4, 64);
  check(make(RopeLayout::Interleaved, 32, Scaling::Yarn), 5, 4, 80);
}

TEST_F(CudaRope, ManyTokens) {
  check(make(RopeLayout::Neox, 64, Scaling::None), 2048, 2, 64);
}

}  // namespace
}  // namespace dspark::cuda
