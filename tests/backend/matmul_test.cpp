// matmul against matmul_reference for every weight type and ISA path (and weights packed by
// pack_for_matmul where that path's kernels read them: AVX-512, and AVX2 for the 32-element
// formats), with a tolerance derived from the 8-bit activation quantization; batch invariance
// (bit-identical results for a token alone, inside batches of other tokens, and with 1 or 2
// threads).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::available_isas;
using testing::IsaScope;
using testing::random_floats;
using testing::random_weight;

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                        DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4_K, DType::Q5_K,
                        DType::Q6_K, DType::Q2_K, DType::Q3_K};

// Activation group size of the fast kernels: 256 for the K-quants, 32 for the other quantized
// types, 0 where activations stay float (float weights, types converted to fp32).
int64_t act_group(DType t) {
  switch (t) {
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return 256;
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
      return 32;
    default:
      return 0;
  }
}

// Column counts to test: not multiples of the tile sizes where the block size allows.
// The last one is long enough for the kernels' column chunking (over 4096 values).
std::vector<int64_t> test_cols(DType t) {
  const int block = dtype_info(t)->block_elems;
  if (block == 1) return {1, 15, 17, 33, 100, 576, 4200};
  if (block == 32) return {32, 96, 544, 576, 1024, 4864};
  return {256, 768, 1280, 4608};
}

// |fast - reference| allowed for token t, row r: each activation moves by at most half its
// quantization step (amax/127/2 of its group), so the dot product by at most
// sum |w| * step / 2; plus float rounding relative to sum |w x|.
float tolerance(DType type, const float* w_row, const float* x, int64_t cols) {
  double quant = 0.0, mag = 0.0;
  const int64_t group = act_group(type);
  if (group > 0) {
    for (int64_t g = 0; g < cols; g += group) {
      float amax = 0.0f;
      for (int64_t c = g; c < g + group; ++c) amax = std::max(amax, std::fabs(x[c]));
      double wsum = 0.0;
      for (int64_t c = g; c < g + group; ++c) wsum += std::fabs(w_row[c]);
      quant += wsum * amax / 127.0 / 2.0;
    }
  }
  for (int64_t c = 0; c < cols; ++c) mag += std::fabs(double(w_row[c]) * x[c]);
  return float(quant * 1.001 + mag * 2e-5 + 1e-6);
}

void expect_close_to_reference(const WeightView& w, const std::vector<float>& x, int64_t n_tok,
                               ThreadPool& pool, const std::string& what) {
  std::vector<float> y(n_tok * w.rows), ref(n_tok * w.rows), row(w.cols);
  matmul(w, x.data(), n_tok, y.data(), pool);
  matmul_reference(w, x.data(), n_tok, ref.data());
  int failures = 0;
  for (int64_t r = 0; r < w.rows && failures < 5; ++r) {
    get_row(w, r, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      const float tol = tolerance(w.type, row.data(), x.data() + t * w.cols, w.cols);
      const float err = std::fabs(y[t * w.rows + r] - ref[t * w.rows + r]);
      if (!(err <= tol)) {
        ADD_FAILURE() << what << " row " << r << " token " << t << ": " << y[t * w.rows + r]
                      << " vs " << ref[t * w.rows + r] << " (tolerance " << tol << ")";
        ++failures;
      }
    }
  }
}

class MatmulTypeTest : public ::testing::TestWithParam<std::tuple<DType, Isa>> {};

TEST_P(MatmulTypeTest, MatchesReference) {
  const auto [type, isa] = GetParam();
  IsaScope scope(isa);
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (int64_t cols : test_cols(type)) {
    for (int64_t rows : {1, 7, 37}) {
      for (int64_t n_tok : {1, 2, 3, 8, 9, 17}) {
        const auto w = random_weight(type, rows, cols, seed++);
        const auto x = random_floats(size_t(n_tok * cols), seed++);
        const std::string what = std::string(dtype_info(type)->name) + " " +
                                 testing::isa_label(isa) + " " + std::to_string(rows) + "x" +
                                 std::to_string(cols) + " n_tok " + std::to_string(n_tok);
        expect_close_to_reference(w.view, x, n_tok, pool, what);
        // The packed layout, where the ISA's kernels read the type packed (37 rows: two whole
        // groups and a tail the kernels read in the file's layout).
        const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
        if (p.packed != nullptr) expect_close_to_reference(p, x, n_tok, pool, what + " packed");
      }
    }
  }
}

// Activations with very different magnitudes per group, zeros and a constant group.
TEST_P(MatmulTypeTest, UnevenActivations) {
  const auto [type, isa] = GetParam();
  IsaScope scope(isa);
  ThreadPool pool(2);
  const int64_t cols = test_cols(type).back(), rows = 19, n_tok = 3;
  auto x = random_floats(size_t(n_tok * cols), 77, -1.0f, 1.0f);
  for (int64_t i = 0; i < n_tok * cols; ++i) {
    const int64_t group = (i % cols) / 32;
    if (group % 3 == 0) x[i] *= 1000.0f;
    if (group % 5 == 1) x[i] = 0.0f;
    if (group % 7 == 2) x[i] = 0.25f;
  }
  const auto w = random_weight(type, rows, cols, 78);
  expect_close_to_reference(w.view, x, n_tok, pool, "uneven");
  const WeightView p = pack_for_matmul(w.view, /*release_source=*/false);
  if (p.packed != nullptr) expect_close_to_reference(p, x, n_tok, pool, "uneven packed");
}

// Every token's outputs must be bit-identical however it is batched and threaded: batches of
// 1..16 random tokens, each token also computed alone, with 1 and 2 threads.
TEST_P(MatmulTypeTest, BatchInvariant) {
  const auto [type, isa] = GetParam();
  IsaScope scope(isa);
  ThreadPool pool1(1), pool2(2);
  const int64_t cols = test_cols(type).back(), rows = 45;
  const auto w = random_weight(type, rows, cols, 5);
  uint32_t seed = 100;
  for (int64_t n_tok = 1; n_tok <= 16; ++n_tok) {
    const auto x = random_floats(size_t(n_tok * cols), seed++);
    std::vector<float> alone(n_tok * rows);
    for (int64_t t = 0; t < n_tok; ++t) {
      matmul(w.view, x.data() + t * cols, 1, alone.data() + t * rows, pool1);
    }
    for (ThreadPool* pool : {&pool1, &pool2}) {
      std::vector<float> y(n_tok * rows);
      matmul(w.view, x.data(), n_tok, y.data(), *pool);
      EXPECT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
          << "n_tok " << n_tok << " threads " << pool->size();
    }
  }
}

// matmul_shared_input gives every matrix exactly what matmul gives it alone: matrices of one
// family (one quantization shared), of different activation formats (run one by one), packed
// or not, unsupported ones (NaN), and more matrices than one fused run takes.
TEST(Matmul, SharedInputMatchesSeparate) {
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    ThreadPool pool(2);
    const int64_t cols = 768;  // a multiple of both 32 and 256
    const std::vector<std::vector<DType>> sets = {
        {DType::Q4_1, DType::Q4_1, DType::Q4_1},
        {DType::Q8_0, DType::Q4_0, DType::Q5_1},
        {DType::Q4_K, DType::Q6_K},
        {DType::Q4_1, DType::Q6_K, DType::F16},
        {DType::Q5_0, DType::Q2_K},
        {DType::Q4_1, DType::Q4_1, DType::Q4_1, DType::Q4_1, DType::Q4_1, DType::Q4_1},
    };
    uint32_t seed = 300;
    for (const auto& types : sets) {
      std::vector<testing::RandomWeight> owned;
      std::vector<WeightView> views;
      for (size_t i = 0; i < types.size(); ++i) {
        const int64_t rows = i % 3 == 0 ? 45 : i % 3 == 1 ? 16 : 3;
        owned.push_back(random_weight(types[i], rows, cols, seed++));
        views.push_back(i % 2 == 0 ? pack_for_matmul(owned.back().view, false) : owned.back().view);
      }
      for (int64_t n_tok : {1, 5, 16}) {
        const auto x = random_floats(size_t(n_tok * cols), seed++);
        std::vector<std::vector<float>> fused(types.size()), alone(types.size());
        std::vector<const WeightView*> ws;
        std::vector<float*> ys;
        for (size_t i = 0; i < types.size(); ++i) {
          fused[i].assign(size_t(n_tok * views[i].rows), 0.0f);
          alone[i].assign(fused[i].size(), 0.0f);
          matmul(views[i], x.data(), n_tok, alone[i].data(), pool);
          ws.push_back(&views[i]);
          ys.push_back(fused[i].data());
        }
        matmul_shared_input(ws.data(), ys.data(), int(ws.size()), x.data(), n_tok, pool);
        for (size_t i = 0; i < types.size(); ++i) {
          EXPECT_EQ(0, std::memcmp(fused[i].data(), alone[i].data(), fused[i].size() * 4))
              << testing::isa_label(isa) << " matrix " << i << " (" << dtype_info(types[i])->name
              << ") n_tok " << n_tok;
        }
      }
    }
  }
}

std::vector<std::tuple<DType, Isa>> all_cases() {
  std::vector<std::tuple<DType, Isa>> out;
  for (DType t : kTypes) {
    for (Isa i : available_isas()) out.emplace_back(t, i);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTypeTest, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) {
                           return std::string(dtype_info(std::get<0>(info.param))->name) + "_" +
                                  testing::isa_label(std::get<1>(info.param));
                         });

TEST(Matmul, UnsupportedTypeFillsNaN) {
  ThreadPool pool(1);
  std::vector<int32_t> data(4 * 8, 1);
  WeightView w;
  w.type = DType::I32;
  w.rows = 4;
  w.cols = 8;
  w.data = data.data();
  w.row_bytes = 32;
  EXPECT_FALSE(matmul_supported(DType::I32));
  std::vector<float> x(8, 1.0f), y(4, 0.0f);
  matmul(w, x.data(), 1, y.data(), pool);
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

TEST(Matmul, SupportedTypes) {
  for (DType t : kTypes) EXPECT_TRUE(matmul_supported(t)) << dtype_info(t)->name;
}

TEST(Matmul, GetRowMatchesDequantize) {
  const auto w = random_weight(DType::Q4_K, 3, 512, 9);
  std::vector<float> a(512), b(512);
  get_row(w.view, 2, a.data());
  dequantize_row(DType::Q4_K, w.bytes.data() + 2 * w.view.row_bytes, b.data(), 512);
  EXPECT_EQ(a, b);
}

TEST(Matmul, WeightViewFromTensor) {
  std::vector<uint8_t> data(dtype_row_bytes(DType::Q8_0, 64) * 3);
  TensorInfo t;
  t.type = DType::Q8_0;
  t.shape = {3, 64};
  t.data = data.data();
  t.n_bytes = data.size();
  const WeightView w = WeightView::from(t);
  EXPECT_EQ(w.rows, 3);
  EXPECT_EQ(w.cols, 64);
  EXPECT_EQ(w.row_bytes, 68u);
  EXPECT_EQ(w.data, data.data());
}

}  // namespace
}  // namespace dspark::cpu
