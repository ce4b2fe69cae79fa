// Weights packed at load (pack_for_matmul) give bit-identical matmul results and rows to the
// same weights in the file's layout, on every ISA path, for whole and partial row groups, every
// batch size from 1 to 20 and 1 to 3 threads; packing leaves the source bytes intact and skips
// what it cannot pack.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
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

bool has_avx512() {
  return available_isas().back() == Isa::Avx512;
}

std::vector<float> run(const WeightView& w, const std::vector<float>& x, int64_t n_tok,
                       ThreadPool& pool) {
  std::vector<float> y(size_t(n_tok * w.rows));
  matmul(w, x.data(), n_tok, y.data(), pool);
  return y;
}

TEST(PackedMatmul, SameResultsAsFileLayout) {
  if (!has_avx512()) GTEST_SKIP() << "packing is for the AVX-512 kernels";
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
            IsaScope scope(isa);  // the other ISAs' kernels read data, not the packed copy
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

// A token's outputs from packed weights do not depend on its batch or the thread count.
TEST(PackedMatmul, BatchInvariant) {
  if (!has_avx512()) GTEST_SKIP() << "packing is for the AVX-512 kernels";
  ThreadPool pool1(1), pool2(2), pool3(3);
  const int64_t rows = 53;
  for (DType type : kPackable) {
    const int64_t cols = test_cols(type)[1];
    const auto w = random_weight(type, rows, cols, 11);
    const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
    const auto x = random_floats(size_t(20 * cols), 12);
    std::vector<float> alone(size_t(20 * rows));
    for (int64_t t = 0; t < 20; ++t) {
      matmul(p, x.data() + t * cols, 1, alone.data() + t * rows, pool1);
    }
    for (int64_t n_tok = 1; n_tok <= 20; ++n_tok) {
      for (ThreadPool* pool : {&pool1, &pool2, &pool3}) {
        const auto y = run(p, x, n_tok, *pool);
        EXPECT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
            << dtype_info(type)->name << " n_tok " << n_tok << " threads " << pool->size();
      }
    }
  }
}

// Releasing the source pages is a hint that keeps their contents.
TEST(PackedMatmul, ReleaseKeepsSource) {
  if (!has_avx512()) GTEST_SKIP() << "packing is for the AVX-512 kernels";
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
  // Below AVX-512 the kernels have no packed layout.
  IsaScope scope(Isa::Avx2);
  const auto w = random_weight(DType::Q4_0, 32, 64, 33);
  EXPECT_EQ(pack_for_matmul(w.view, false).packed, nullptr);
}

}  // namespace
}  // namespace dspark::cpu
