// The CPU backend's weight copies (quantize_weight to Q8_0, gather_rows) and its Backend ops,
// which must give bit for bit what the cpu:: kernels they wrap give.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::random_floats;
using testing::random_weight;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A float32 view of [rows, cols] floats.
WeightView f32_view(const std::vector<float>& v, int64_t rows, int64_t cols) {
  WeightView w;
  w.type = DType::F32;
  w.rows = rows;
  w.cols = cols;
  w.data = v.data();
  w.row_bytes = uint64_t(cols) * sizeof(float);
  return w;
}

std::vector<float> row_of(const WeightView& w, int64_t r) {
  std::vector<float> out(size_t(w.cols));
  get_row(w, r, out.data());
  return out;
}

TEST(QuantizeWeight, Q8_0EqualsRowQuantizerAndRoundsToNearest) {
  const int64_t rows = 48, cols = 96;  // three groups of 16 rows: packed where the ISA packs
  std::vector<float> x = random_floats(rows * cols, 1, -3.0f, 3.0f);
  std::fill_n(x.begin(), cols, 0.0f);  // an all-zero row has d = 0
  auto q = quantize_weight(f32_view(x, rows, cols), DType::Q8_0);
  ASSERT_TRUE(q.ok()) << q.error().message;
  ASSERT_EQ(q->type, DType::Q8_0);
  ASSERT_EQ(q->rows, rows);
  ASSERT_EQ(q->cols, cols);
  ASSERT_EQ(q->row_bytes, dtype_row_bytes(DType::Q8_0, cols));
  std::vector<uint8_t> expected(q->row_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x.data() + r * cols;
    quantize_row_q8_0(in, cols, expected.data());
    EXPECT_EQ(std::memcmp(static_cast<const uint8_t*>(q->data) + r * q->row_bytes, expected.data(),
                          q->row_bytes),
              0)
        << "row " << r;
    const std::vector<float> got = row_of(*q, r);
    for (int64_t b = 0; b < cols / 32; ++b) {
      float amax = 0.0f;
      for (int64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(in[b * 32 + j]));
      // The values are rounded with the float scale amax / 127 and stored with its f16
      // rounding d: up to 127 * |d - amax / 127| further from the input than d / 2.
      const float d = f16_to_f32(f32_to_f16(amax / 127.0f));
      const float tol = d / 2 + 127.0f * std::fabs(d - amax / 127.0f) + 1e-6f;
      for (int64_t j = b * 32; j < b * 32 + 32; ++j) {
        EXPECT_NEAR(got[size_t(j)], in[j], tol) << "row " << r << " col " << j;
      }
    }
  }
}

TEST(QuantizeWeight, RejectsOtherWidthsAndTypes) {
  const std::vector<float> x = random_floats(4 * 40, 2);
  EXPECT_FALSE(quantize_weight(f32_view(x, 4, 40), DType::Q8_0).ok());  // 40 % 32 != 0
  const std::vector<float> y = random_floats(4 * 64, 3);
  EXPECT_FALSE(quantize_weight(f32_view(y, 4, 64), DType::Q4_0).ok());
}

TEST(GatherRows, ReturnsTheChosenRows) {
  const int64_t rows = 48, cols = 64;
  const std::vector<float> x = random_floats(rows * cols, 4);
  WeightView f32 = f32_view(x, rows, cols);
  auto q8 = quantize_weight(f32, DType::Q8_0);
  ASSERT_TRUE(q8.ok()) << q8.error().message;
  if (active_isa() != Isa::Scalar) {
    ASSERT_NE(q8->packed, nullptr);  // Q8_0 packs from AVX2 on
  }
  // 40 ids, repeats included: two whole groups of 16 (packed where the ISA packs) and a tail.
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 40; ++i) ids.push_back((i * 29 + 7) % int32_t(rows));
  ids[5] = ids[4];
  for (const WeightView* w : {&f32, &*q8}) {
    const WeightView g = gather_rows(*w, ids.data(), int64_t(ids.size()));
    ASSERT_EQ(g.type, w->type);
    ASSERT_EQ(g.rows, int64_t(ids.size()));
    ASSERT_EQ(g.cols, cols);
    EXPECT_EQ(g.packed != nullptr, w->packed != nullptr);
    for (size_t j = 0; j < ids.size(); ++j) {
      EXPECT_TRUE(same_bits(row_of(g, int64_t(j)), row_of(*w, ids[j])))
          << dtype_info(w->type)->name << " row " << j;
    }
  }
}

// Each op of the backend against the kernel it wraps, on random data.
TEST(CpuBackend, OpsEqualTheKernels) {
  const std::unique_ptr<Backend> backend = make_cpu_backend(2);
  ThreadPool pool(2);
  EXPECT_NE(backend->name().find(isa_name()), std::string::npos) << backend->name();
  EXPECT_EQ(backend->n_threads(), 2);

  const int64_t n_tok = 5, d = 64;
  const std::vector<float> x = random_floats(n_tok * d, 10, -2.0f, 2.0f);
  const testing::RandomWeight wa = random_weight(DType::Q8_0, 40, d, 11);
  const testing::RandomWeight wb = random_weight(DType::Q4_K, 24, 256, 12);
  const WeightView a = backend->place_weight(wa.view, false);

  {  // matmul
    std::vector<float> y1(size_t(n_tok * a.rows)), y2(y1.size());
    backend->matmul(a, x.data(), n_tok, y1.data());
    matmul(a, x.data(), n_tok, y2.data(), pool);
    EXPECT_TRUE(same_bits(y1, y2)) << "matmul";
  }
  {  // matmul_shared_input over two matrices of the same width
    const testing::RandomWeight wc = random_weight(DType::Q8_0, 17, d, 14);
    const WeightView* ws[] = {&a, &wc.view};
    std::vector<float> y1a(size_t(n_tok * 40)), y1c(size_t(n_tok * 17)), y2a(y1a.size()),
        y2c(y1c.size());
    float* const ys1[] = {y1a.data(), y1c.data()};
    float* const ys2[] = {y2a.data(), y2c.data()};
    backend->matmul_shared_input(ws, ys1, 2, x.data(), n_tok);
    matmul_shared_input(ws, ys2, 2, x.data(), n_tok, pool);
    EXPECT_TRUE(same_bits(y1a, y2a) && same_bits(y1c, y2c)) << "matmul_shared_input";
  }
  {  // gather_weight_rows
    const std::vector<int32_t> ids = {3, 0, 23, 3};
    std::vector<float> got(ids.size() * 256), want;
    backend->gather_weight_rows(wb.view, ids.data(), int64_t(ids.size()), got.data());
    for (int32_t id : ids) {
      const std::vector<float> r = row_of(wb.view, id);
      want.insert(want.end(), r.begin(), r.end());
    }
    EXPECT_TRUE(same_bits(got, want)) << "gather_weight_rows";
  }
  {  // rmsnorm
    const std::vector<float> w = random_floats(d, 15);
    std::vector<float> y1(x.size()), y2(x.size());
    backend->rmsnorm(x.data(), w.data(), n_tok, d, 1e-5f, y1.data());
    rmsnorm(x.data(), w.data(), n_tok, d, 1e-5f, y2.data());
    EXPECT_TRUE(same_bits(y1, y2)) << "rmsnorm";
  }
  {  // rope: n_tok tokens of 4 heads of 16
    RopeParams p;
    p.rot_dims = 16;
    const std::vector<int32_t> pos = {0, 7, 3, 100, 4095};
    std::vector<float> y1 = x, y2 = x;
    backend->rope(y1.data(), pos.data(), n_tok, 4, 16, p);
    rope(y2.data(), pos.data(), n_tok, 4, 16, p);
    EXPECT_TRUE(same_bits(y1, y2)) << "rope";
  }
  {  // silu_mul, per row of d
    const std::vector<float> up = random_floats(x.size(), 16);
    std::vector<float> y1 = x, y2(x.size());
    backend->silu_mul(y1.data(), up.data(), n_tok, d);
    for (int64_t t = 0; t < n_tok; ++t) {
      silu_mul(x.data() + t * d, up.data() + t * d, d, y2.data() + t * d);
    }
    EXPECT_TRUE(same_bits(y1, y2)) << "silu_mul";
  }
  {  // add, add_rows
    const std::vector<float> z = random_floats(x.size(), 17);
    std::vector<float> y1 = x, y2 = x;
    backend->add(y1.data(), z.data(), int64_t(z.size()));
    add_inplace(y2.data(), z.data(), int64_t(z.size()));
    EXPECT_TRUE(same_bits(y1, y2)) << "add";
    y1 = x;
    y2 = x;
    backend->add_rows(y1.data(), z.data(), n_tok, d);
    for (int64_t t = 0; t < n_tok; ++t) add_inplace(y2.data() + t * d, z.data(), d);
    EXPECT_TRUE(same_bits(y1, y2)) << "add_rows";
  }

  // store_kv into 12 slots of [2 kv heads, 16], then attention of n_tok tokens of 4 heads.
  const int64_t n_slots = 12, row = 32;
  const std::vector<int32_t> slots = {4, 0, 11, 7, 2};
  std::vector<uint16_t> k1(size_t(n_slots * row), 0), k2(k1.size(), 0);
  backend->store_kv(x.data(), slots.data(), n_tok, row, k1.data());
  store_kv_f16(x.data(), slots.data(), n_tok, row, k2.data());
  EXPECT_EQ(k1, k2) << "store_kv";
  std::vector<uint16_t> k, v;
  for (float f : random_floats(size_t(n_slots * row), 18, -2.0f, 2.0f)) k.push_back(f32_to_f16(f));
  for (float f : random_floats(size_t(n_slots * row), 19)) v.push_back(f32_to_f16(f));
  // Token t's keys: sequence t's context (3 slots of pages 0 and 2 of 2 slots each; none for
  // token 1, which has no keys) and extra slots; nothing in-batch.
  const std::vector<std::vector<int32_t>> tables = {{0, 2}, {}, {3, 1}, {4}, {5, 1}};
  const std::vector<int32_t> n_past = {3, 0, 3, 1, 3};
  const std::vector<std::vector<int32_t>> extras = {{}, {}, {5, 11}, {}, {}};
  AttentionPlan plan;
  plan.reset(2);
  for (int64_t t = 0; t < n_tok; ++t) plan.add_sequence(tables[t], n_past[t], extras[t]);
  const std::vector<int32_t> seq = {0, 1, 2, 3, 4};
  plan.set_tokens(seq, slots);
  plan.use_mask();
  std::vector<float> o1(size_t(n_tok * 64)), o2(o1.size());
  backend->attention(attention_args(plan, 4, 2, 16, x.data(), k.data(), v.data(), o1.data()));
  attention(attention_args(plan, 4, 2, 16, x.data(), k.data(), v.data(), o2.data()), pool);
  EXPECT_TRUE(same_bits(o1, o2)) << "attention";

  EXPECT_EQ(backend->argmax(x.data(), int64_t(x.size())), argmax(x.data(), int64_t(x.size())));
}

}  // namespace
}  // namespace dspark::cpu
