// quantize_layers (the engine's Q8_0 draft layers): every 32-wide matrix becomes Q8_0 whose
// rows dequantize to the float rows within half a quantization step per block, and the drafter
// built on them gives base logits within quantization noise of the float drafter's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "dspark_harness.h"
#include "model/tiny_models.h"

namespace dspark::spec {
namespace {

using test::DSparkHarness;

std::unique_ptr<DSparkHarness> harness(bool quantize) {
  std::string error;
  auto h = DSparkHarness::create(test::tiny_model(test::kTinyDSpark), 4, 1, &error,
                                 test::kTinyTarget, quantize);
  EXPECT_NE(h, nullptr) << error;
  return h;
}

// Each value of q's rows is within half a step (max |block| / 127 / 2, plus the f16 rounding of
// the scale) of f's.
void expect_close_rows(Backend& backend, const WeightView& f, const WeightView& q,
                       const char* what) {
  ASSERT_EQ(q.type, DType::Q8_0) << what;
  ASSERT_EQ(q.rows, f.rows) << what;
  ASSERT_EQ(q.cols, f.cols) << what;
  std::vector<float> a(static_cast<size_t>(f.cols)), b(static_cast<size_t>(f.cols));
  for (int32_t r = 0; r < f.rows; ++r) {
    backend.gather_weight_rows(f, &r, 1, a.data());
    backend.gather_weight_rows(q, &r, 1, b.data());
    for (int64_t blk = 0; blk < f.cols / 32; ++blk) {
      float amax = 0.0f;
      for (int64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(a[size_t(blk * 32 + j)]));
      const float step = amax / 127.0f;
      for (int64_t j = 0; j < 32; ++j) {
        const size_t i = size_t(blk * 32 + j);
        ASSERT_LE(std::fabs(a[i] - b[i]), 0.5f * step + 2e-3f * amax + 1e-7f)
            << what << " row " << r << " col " << i;
      }
    }
  }
}

TEST(DSparkQuantize, LayersBecomeQ8_0WithinHalfAStep) {
  auto f = harness(false);
  auto q = harness(true);
  ASSERT_TRUE(f && q);
  const auto& a = f->drafter().checkpoint();
  const auto& b = q->drafter().checkpoint();
  Backend& backend = f->backend();
  expect_close_rows(backend, a.fc, b.fc, "fc");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const dspark_detail::DraftLayer& x = a.layers[i];
    const dspark_detail::DraftLayer& y = b.layers[i];
    expect_close_rows(backend, x.q, y.q, "q");
    expect_close_rows(backend, x.k, y.k, "k");
    expect_close_rows(backend, x.v, y.v, "v");
    expect_close_rows(backend, x.o, y.o, "o");
    expect_close_rows(backend, x.gate, y.gate, "gate");
    expect_close_rows(backend, x.up, y.up, "up");
    expect_close_rows(backend, x.down, y.down, "down");
  }
  // The heads are not the layers': untouched.
  EXPECT_EQ(b.draft_head.type, a.draft_head.type);
  EXPECT_EQ(b.markov_w2.type, a.markov_w2.type);
}

TEST(DSparkQuantize, BaseLogitsStayWithinQuantizationNoise) {
  auto f = harness(false);
  auto q = harness(true);
  ASSERT_TRUE(f && q);
  const int V = f->target().config().vocab_size;
  const std::vector<int32_t> table = {0, 1, 2, 3};
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    const std::vector<int32_t> tokens = dspark::test::some_tokens(13, V - 1, seed);  // no mask id
    ASSERT_TRUE(f->prefill(tokens, 0, 12, table).ok());
    ASSERT_TRUE(q->prefill(tokens, 0, 12, table).ok());
    f->drafter().keep_logits(true);
    q->drafter().keep_logits(true);
    const DraftInput in = DSparkHarness::input(1, tokens, table, 4, 4);
    std::vector<DraftTree> out;
    ASSERT_TRUE(f->drafter().propose(std::vector<DraftInput>{in}, out).ok());
    ASSERT_TRUE(q->drafter().propose(std::vector<DraftInput>{in}, out).ok());
    const std::vector<float>& u = f->drafter().last_logits()[0];
    const std::vector<float>& w = q->drafter().last_logits()[0];
    ASSERT_EQ(u.size(), w.size());
    float scale = 0.0f, worst = 0.0f;
    for (size_t i = 0; i < u.size(); ++i) {
      scale = std::max(scale, std::fabs(u[i]));
      worst = std::max(worst, std::fabs(u[i] - w[i]));
    }
    EXPECT_LE(worst, 0.05f * (1.0f + scale)) << "seed " << seed;
    EXPECT_GT(worst, 0.0f) << "seed " << seed << ": the quantized drafter ran the float weights";
  }
}

}  // namespace
}  // namespace dspark::spec
