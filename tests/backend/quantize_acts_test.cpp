// The SIMD activation quantizers produce the same values, scales and sums as the natural-order
// scalar quantizer, only in their own order.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

struct Quantized {
  std::vector<int8_t> qs;
  std::vector<float> d;
  std::vector<int32_t> sums;
};

Quantized run(const ActFormat& f, const std::vector<float>& x) {
  const ActLengths len = f.lengths(int64_t(x.size()));
  Quantized q{std::vector<int8_t>(len.qs), std::vector<float>(len.d),
              std::vector<int32_t>(len.sums)};
  f.quantize(x.data(), int64_t(x.size()), q.qs.data(), q.d.data(), q.sums.data());
  return q;
}

std::vector<float> test_input(int64_t cols) {
  auto x = testing::random_floats(cols, uint32_t(cols), -3.0f, 3.0f);
  for (int64_t i = 0; i < 32 && i < cols; ++i) x[i] = 0.0f;  // an all-zero block
  return x;
}

TEST(QuantizeActs, Avx2MatchesScalar) {
  if (testing::available_isas().back() < Isa::Avx2) GTEST_SKIP() << "no AVX2";
  for (int64_t cols : {256, 4864}) {
    const auto x = test_input(cols);
    const Quantized a = run(kernels_avx2().q4_0.act, x), b = run(kernels_scalar().q4_0.act, x);
    EXPECT_EQ(a.qs, b.qs);
    EXPECT_EQ(a.d, b.d);
    EXPECT_EQ(a.sums, b.sums);
  }
}

// The AVX-512 32-element formats keep values and scales in natural order and add per-block
// terms: d[2 b + 1] = scale * sum (Q4_1 / Q5_1 min), sums[b] = -(sum << shift) (the offset 8,
// 16 or 128 that Q4_0, Q5_0 and Q8_0 subtract from q).
TEST(QuantizeActs, Avx512RowsMatchesNatural) {
  if (testing::available_isas().back() != Isa::Avx512) GTEST_SKIP() << "no AVX-512 VNNI";
  const std::pair<ActFormat, int32_t> formats[] = {{kernels_avx512().q4_0.act, 8},
                                                   {kernels_avx512().q4_1.act, 1},
                                                   {kernels_avx512().q5_0.act, 16},
                                                   {kernels_avx512().q5_1.act, 1},
                                                   {kernels_avx512().q8_0.act, 128}};
  for (int64_t cols : {32, 544, 1024, 4864}) {
    const auto x = test_input(cols);
    const Quantized nat = run(act_q8_32_natural(), x);
    for (const auto& [format, offset] : formats) {
      const Quantized q = run(format, x);
      EXPECT_EQ(q.qs, nat.qs);
      const int64_t nb = cols / 32;
      ASSERT_EQ(q.d.size(), size_t(2 * nb));
      ASSERT_EQ(q.sums.size(), size_t(nb));
      for (int64_t b = 0; b < nb; ++b) {
        EXPECT_EQ(q.d[2 * b], nat.d[b]) << "block " << b;
        EXPECT_EQ(q.d[2 * b + 1], nat.d[b] * float(nat.sums[b])) << "block " << b;
        EXPECT_EQ(q.sums[b], -nat.sums[b] * offset) << "block " << b;
      }
    }
  }
}

// The K-quant tile kernels' formats (AVX-512 and AVX2) keep values and scales in natural order
// and pair sums into the int16 halves of dwords, in the pairing of the weights' mins or scales:
// per super-block, Q4_K / Q5_K have four dwords of 32-value sub-block sums (s0, s2), (s1, s3),
// (s4, s6), (s5, s7), and Q6_K eight of 16-value group sums (g0, g2), (g1, g3), (g4, g6),
// (g5, g7), (g8, g10), ...
TEST(QuantizeActs, KQuantPairsMatchNatural) {
  if (testing::available_isas().back() == Isa::Scalar) GTEST_SKIP() << "no SIMD kernels";
  for (Isa isa : testing::available_isas()) {
    if (isa == Isa::Scalar) continue;
    const KernelSet& ks = isa == Isa::Avx512 ? kernels_avx512() : kernels_avx2();
    const std::string label = testing::isa_label(isa);
    for (int64_t cols : {256, 768, 4864}) {
      const auto x = test_input(cols);
      const Quantized nat = run(act_q8_256_natural(), x);
      const int64_t nb = cols / 256;
      const Quantized q6 = run(ks.q6_k.act, x);
      EXPECT_EQ(q6.qs, nat.qs) << label;
      EXPECT_EQ(q6.d, nat.d) << label;
      ASSERT_EQ(q6.sums.size(), size_t(8 * nb)) << label;
      for (int64_t b = 0; b < nb; ++b) {
        for (int p = 0; p < 8; ++p) {
          const int g = 4 * (p / 2) + p % 2;
          const uint32_t pair = uint32_t(q6.sums[8 * b + p]);
          EXPECT_EQ(int16_t(pair & 0xFFFF), nat.sums[16 * b + g])
              << label << " block " << b << " pair " << p;
          EXPECT_EQ(int16_t(pair >> 16), nat.sums[16 * b + g + 2])
              << label << " block " << b << " pair " << p;
        }
      }
      for (const ActFormat& f : {ks.q4_k.act, ks.q5_k.act}) {
        const Quantized q = run(f, x);
        EXPECT_EQ(q.qs, nat.qs) << label;
        EXPECT_EQ(q.d, nat.d) << label;
        ASSERT_EQ(q.sums.size(), size_t(4 * nb)) << label;
        for (int64_t b = 0; b < nb; ++b) {
          const auto sub_block = [&](int j) {
            return nat.sums[16 * b + 2 * j] + nat.sums[16 * b + 2 * j + 1];
          };
          const int first[4] = {0, 1, 4, 5};
          for (int p = 0; p < 4; ++p) {
            const uint32_t pair = uint32_t(q.sums[4 * b + p]);
            EXPECT_EQ(int16_t(pair & 0xFFFF), sub_block(first[p]))
                << label << " block " << b << " pair " << p;
            EXPECT_EQ(int16_t(pair >> 16), sub_block(first[p] + 2))
                << label << " block " << b << " pair " << p;
          }
        }
      }
    }
  }
}

// Scale = amax / 127 and values round to nearest.
TEST(QuantizeActs, NaturalValues) {
  std::vector<float> x(32, 0.0f);
  x[0] = 2.54f;
  x[1] = -1.0f;
  x[2] = 0.004f;
  const Quantized q = run(act_q8_32_natural(), x);
  EXPECT_FLOAT_EQ(q.d[0], 2.54f / 127.0f);
  EXPECT_EQ(q.qs[0], 127);
  EXPECT_EQ(q.qs[1], -50);
  EXPECT_EQ(q.qs[2], 0);
  EXPECT_EQ(q.sums[0], 77);
}

}  // namespace
}  // namespace dspark::cpu
