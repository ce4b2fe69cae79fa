// Weights packed at load (pack_for_matmul) give bit-identical matmul results and rows to the
// same weights in the file's layout, on every ISA path (the kernels that read the packed tiles,
// AVX-512's and AVX2's, build the same tiles from the file's layout), for whole
// and partial row groups, every batch size from 1 to 20 and 1 to 3 threads; batch invariance
// holds for packed weights on every path; the AVX2 tile kernels stay within rounding of the
// scalar kernels at the formats' extreme values. Packing leaves the source bytes intact and
// skips what the active kernels cannot read.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::available_isas;
using testing::IsaScope;
using testing::random_floats;
using testing::random_weight;

const DType kPackable[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                           DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Row lengths: one block, a few (Qwen 0.5B's d_model for the 32-element formats), Qwen 0.5B's
// ffn width.
std::vector<int64_t> test_cols(DType type) {
  if (dtype_info(type)->block_elems == 256) return {256, 1280, 4864};
  return {32, 576, 896, 4864};
}

// The highest ISA's kernels pack every packable type (scalar kernels none).
bool top_packs() {
  return available_isas().back() != Isa::Scalar;
}

// Bound on the float rounding of a 32-element format's row r for token x: two kernels sum the
// same exact per-block integer dot products, scaled, in a different order; each term is at most
// about sum |d q| |x| (+ |m| |x| for the formats with a min), so both sums are within
// n_blocks * 2^-24 of the sum of the terms' magnitudes.
float rounding_tolerance(const testing::RandomWeight& w, int64_t r, const float* x) {
  const int64_t cols = w.view.cols;
  std::vector<float> row(static_cast<size_t>(cols));
  get_row(w.view, r, row.data());
  const bool has_min = w.view.type == DType::Q4_1 || w.view.type == DType::Q5_1;
  const int block_bytes = dtype_info(w.view.type)->block_bytes;
  double terms = 0.0;
  for (int64_t b = 0; b < cols / 32; ++b) {
    float m = 0.0f;
    if (has_min) {
      uint16_t h;
      std::memcpy(&h, w.bytes.data() + r * w.view.row_bytes + b * block_bytes + 2, 2);
      m = f16_to_f32(h);
    }
    for (int64_t c = 32 * b; c < 32 * b + 32; ++c) {
      terms += (std::fabs(row[c] - m) + std::fabs(m)) * std::fabs(x[c]);
    }
  }
  return float(terms * 1.01 * 2.0 * double(cols / 32) * 0x1p-24 + 1e-7);
}

void expect_within_rounding(const testing::RandomWeight& w, const std::vector<float>& x,
                            int64_t n_tok, const std::vector<float>& y,
                            const std::vector<float>& ref, const std::string& what) {
  const int64_t rows = w.view.rows;
  int failures = 0;
  for (int64_t r = 0; r < rows && failures < 5; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      const float a = y[t * rows + r], b = ref[t * rows + r];
      const float tol = rounding_tolerance(w, r, x.data() + t * w.view.cols);
      if (!(std::fabs(a - b) <= tol)) {
        ADD_FAILURE() << what << " row " << r << " token " << t << ": " << a << " vs " << b
                      << " (tolerance " << tol << ")";
        ++failures;
      }
    }
  }
}

std::vector<float> run(const WeightView& w, const std::vector<float>& x, int64_t n_tok,
                       ThreadPool& pool) {
  std::vector<float> y(size_t(n_tok * w.rows));
  matmul(w, x.data(), n_tok, y.data(), pool);
  return y;
}

TEST(PackedMatmul, SameResultsAsFileLayout) {
  if (available_isas().back() == Isa::Scalar) GTEST_SKIP() << "no kernels read packed weights";
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (DType type : kPackable) {
    for (int64_t cols : test_cols(type)) {
      for (int64_t rows : {16, 37, 53}) {  // whole groups only, and a partial last group
        const auto w = random_weight(type, rows, cols, seed++);
        const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
        ASSERT_NE(p.packed, nullptr);
        for (int64_t n_tok = 1; n_tok <= 20; ++n_tok) {
          const auto x = random_floats(size_t(n_tok * cols), seed++);
          const std::string what = std::string(dtype_info(type)->name) + " " +
                                   std::to_string(rows) + "x" + std::to_string(cols) + " n_tok " +
                                   std::to_string(n_tok);
          for (Isa isa : available_isas()) {
            IsaScope scope(isa);
            EXPECT_EQ(run(p, x, n_tok, pool), run(w.view, x, n_tok, pool))
                << what << " " << testing::isa_label(isa);
          }
        }
        std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          get_row(p, r, a.data());
          get_row(w.view, r, b.data());
          EXPECT_EQ(a, b) << dtype_info(type)->name << " row " << r;
        }
      }
    }
  }
}

// A token's outputs from packed weights do not depend on its batch or the thread count (and so
// on the rows x tokens rectangles the pool hands out), on every ISA path.
TEST(PackedMatmul, BatchInvariant) {
  if (available_isas().back() == Isa::Scalar) GTEST_SKIP() << "no kernels read packed weights";
  ThreadPool pool1(1), pool2(2), pool3(3);
  for (DType type : kPackable) {
    for (int64_t rows : {48, 53}) {  // whole groups only, and a partial last group
      const int64_t cols = test_cols(type)[1];
      const auto w = random_weight(type, rows, cols, 11);
      const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
      EXPECT_EQ(p.packed != nullptr, top_packs()) << dtype_info(type)->name;
      const auto x = random_floats(size_t(20 * cols), 12);
      for (Isa isa : available_isas()) {
        IsaScope scope(isa);
        std::vector<float> alone(size_t(20 * rows));
        for (int64_t t = 0; t < 20; ++t) {
          matmul(p, x.data() + t * cols, 1, alone.data() + t * rows, pool1);
        }
        for (int64_t n_tok = 1; n_tok <= 20; ++n_tok) {
          for (ThreadPool* pool : {&pool1, &pool2, &pool3}) {
            const auto y = run(p, x, n_tok, *pool);
            EXPECT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
                << dtype_info(type)->name << " " << rows << " rows " << testing::isa_label(isa)
                << " n_tok " << n_tok << " threads " << pool->size();
          }
        }
      }
    }
  }
}

// Extreme weights and activations: every quantized value at its largest and smallest (the
// int16 bounds of the AVX2 tile kernels), and activations at +-127 after quantization. Each
// path's results, packed or not, stay within rounding of the scalar kernels' (exact integer
// dot products per block), and packed equals the file's layout.
TEST(PackedMatmul, ExtremeValues) {
  if (available_isas().back() == Isa::Scalar) GTEST_SKIP() << "no kernels read packed weights";
  ThreadPool pool(2);
  const int64_t rows = 37, cols = 576, n_tok = 5;
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
    for (uint8_t fill : {uint8_t(0x00), uint8_t(0xFF), uint8_t(0x80), uint8_t(0x7F)}) {
      auto w = random_weight(type, rows, cols, 41);
      const int block_bytes = dtype_info(type)->block_bytes;
      const int head = type == DType::Q4_1 || type == DType::Q5_1 ? 4 : 2;  // d (and m)
      for (int64_t b = 0; b < rows * cols / 32; ++b) {
        std::memset(w.bytes.data() + b * block_bytes + head, fill, size_t(block_bytes - head));
      }
      // Token 0 all +1, token 1 all -1 (every pair sum at its bound), the others mixed.
      std::vector<float> x(size_t(n_tok * cols));
      for (size_t i = 0; i < x.size(); ++i) {
        const int64_t t = int64_t(i) / cols;
        x[i] = t == 0 ? 1.0f : t == 1 ? -1.0f : (i / 3) % 2 ? 1.0f : -1.0f;
      }
      const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
      std::vector<float> ref;
      {
        IsaScope scope(Isa::Scalar);
        ref = run(w.view, x, n_tok, pool);
      }
      for (Isa isa : available_isas()) {
        IsaScope scope(isa);
        const std::string what = std::string(dtype_info(type)->name) + " fill " +
                                 std::to_string(fill) + " " + testing::isa_label(isa);
        const auto y = run(w.view, x, n_tok, pool);
        expect_within_rounding(w, x, n_tok, y, ref, what);
        EXPECT_EQ(run(p, x, n_tok, pool), y) << what << " packed";
      }
    }
  }
}

// K-quants at the extremes: every value, scale and min byte at 0x00, 0xFF, 0x80 or 0x7F (the
// int16 bounds of the AVX2 tile kernels: Q4_K sums 8 pair sums, Q5_K 4, Q6_K 2 in int16) and
// activations at +-127. Each path stays within rounding of the scalar kernels: both sum the same
// exact integers per super-block, so they differ only in a few float steps per super-block,
// each within 2^-24 of the magnitudes |w x| + |dmin m x| (m <= 63) it combines.
TEST(PackedMatmul, ExtremeValuesKQuants) {
  if (available_isas().back() == Isa::Scalar) GTEST_SKIP() << "no kernels read packed weights";
  ThreadPool pool(2);
  const int64_t rows = 37, cols = 768, n_tok = 5;
  // Bytes of a block before its filled part: d and dmin (Q4_K, Q5_K); Q6_K's d is last.
  const std::pair<DType, std::pair<int, int>> kinds[] = {
      {DType::Q4_K, {4, 144}}, {DType::Q5_K, {4, 176}}, {DType::Q6_K, {0, 208}}};
  for (const auto& [type, span] : kinds) {
    for (uint8_t fill : {uint8_t(0x00), uint8_t(0xFF), uint8_t(0x80), uint8_t(0x7F)}) {
      auto w = random_weight(type, rows, cols, 43);
      const int block_bytes = dtype_info(type)->block_bytes;
      for (int64_t b = 0; b < rows * cols / 256; ++b) {
        std::memset(w.bytes.data() + b * block_bytes + span.first, fill,
                    size_t(span.second - span.first));
      }
      std::vector<float> x(size_t(n_tok * cols));
      for (size_t i = 0; i < x.size(); ++i) {
        const int64_t t = int64_t(i) / cols;
        x[i] = t == 0 ? 1.0f : t == 1 ? -1.0f : (i / 3) % 2 ? 1.0f : -1.0f;
      }
      std::vector<float> ref;
      {
        IsaScope scope(Isa::Scalar);
        ref = run(w.view, x, n_tok, pool);
      }
      const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
      for (Isa isa : available_isas()) {
        IsaScope scope(isa);
        const std::string what = std::string(dtype_info(type)->name) + " fill " +
                                 std::to_string(fill) + " " + testing::isa_label(isa);
        const auto y = run(w.view, x, n_tok, pool);
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          get_row(w.view, r, row.data());
          for (int64_t t = 0; t < n_tok; ++t) {
            double terms = 0.0;
            for (int64_t c = 0; c < cols; ++c) {
              float dmin = 0.0f;
              if (type != DType::Q6_K) {
                uint16_t h;
                std::memcpy(&h, w.bytes.data() + r * w.view.row_bytes + (c / 256) * block_bytes + 2,
                            2);
                dmin = f16_to_f32(h);
              }
              terms += (std::fabs(row[c]) + 63.0 * std::fabs(dmin)) * std::fabs(x[t * cols + c]);
            }
            const double tol = terms * 8.0 * double(cols / 256) * 0x1p-24 + 1e-7;
            EXPECT_NEAR(y[t * rows + r], ref[t * rows + r], tol) << what << " row " << r;
          }
        }
        EXPECT_EQ(run(p, x, n_tok, pool), y) << what << " packed";
      }
    }
  }
}

// The K-quant tile kernels of AVX2 and AVX-512 sum the same exact integers and end each
// super-block with the same float steps, so they give the same bits (a CPU with AVX-512 VNNI
// runs both).
TEST(PackedMatmul, KQuantIsasAgree) {
  if (available_isas().back() != Isa::Avx512) GTEST_SKIP() << "no AVX-512 VNNI to compare with";
  ThreadPool pool(2);
  uint32_t seed = 51;
  for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const auto w = random_weight(type, 53, 1280, seed++);
    for (int64_t n_tok : {1, 3, 8, 13}) {
      const auto x = random_floats(size_t(n_tok * 1280), seed++);
      std::vector<float> avx2;
      {
        IsaScope scope(Isa::Avx2);
        avx2 = run(pack_for_matmul(w.view, false), x, n_tok, pool);
      }
      IsaScope scope(Isa::Avx512);
      EXPECT_EQ(run(pack_for_matmul(w.view, false), x, n_tok, pool), avx2)
          << dtype_info(type)->name << " n_tok " << n_tok;
    }
  }
}

// Releasing the source pages is a hint that keeps their contents.
TEST(PackedMatmul, ReleaseKeepsSource) {
  if (available_isas().back() == Isa::Scalar) GTEST_SKIP() << "no kernels read packed weights";
  const auto w = random_weight(DType::Q8_0, 4096, 1024, 21);
  const std::vector<uint8_t> before = w.bytes;
  const WeightView p = pack_for_matmul(w.view, /*release_source=*/true);
  ASSERT_NE(p.packed, nullptr);
  EXPECT_EQ(w.bytes, before);
}

TEST(PackedMatmul, LeavesOthersUnpacked) {
  for (DType type : {DType::F32, DType::F16, DType::Q2_K, DType::Q3_K}) {
    const auto w = random_weight(type, 32, 256, 31);
    EXPECT_EQ(pack_for_matmul(w.view, false).packed, nullptr) << dtype_info(type)->name;
  }
  // Fewer than 16 rows: no whole group.
  const auto small = random_weight(DType::Q4_0, 15, 64, 32);
  EXPECT_EQ(pack_for_matmul(small.view, false).packed, nullptr);
  const auto q4_0 = random_weight(DType::Q4_0, 32, 256, 33);
  const auto q4_k = random_weight(DType::Q4_K, 32, 256, 34);
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    // AVX2 and AVX-512 read every packable format packed; scalar reads nothing packed.
    EXPECT_EQ(pack_for_matmul(q4_0.view, false).packed != nullptr, isa != Isa::Scalar)
        << testing::isa_label(isa);
    EXPECT_EQ(pack_for_matmul(q4_k.view, false).packed != nullptr, isa != Isa::Scalar)
        << testing::isa_label(isa);
  }
}

}  // namespace
}  // namespace dspark::cpu
