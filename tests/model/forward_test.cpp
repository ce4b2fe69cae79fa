// Forward invariances on the tiny models: chunked prefill == token-by-token decode, a batch of
// several sequences == each sequence alone, scattered block tables == contiguous ones (all
// bit-exact, since the CPU kernels are batch-invariant), and GGUF == Hugging Face layouts.
#include <gtest/gtest.h>

#include <cmath>

#include "param_name.h"
#include "tiny_models.h"

namespace dspark::test {
namespace {

class ForwardTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string error;
    model_ = load_tiny(GetParam(), &error);
    ASSERT_NE(model_, nullptr) << GetParam() << ": " << error;
    vocab_ = model_->config().vocab_size;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
  int vocab_ = 0;
};

TEST_P(ForwardTest, ChunkedPrefillEqualsTokenByToken) {
  const auto tokens = some_tokens(23, vocab_, 1);
  SeqRunner whole(*model_, *backend_, 4, iota_table(8), 8);
  SeqRunner chunks(*model_, *backend_, 4, iota_table(8), 8);
  SeqRunner single(*model_, *backend_, 4, iota_table(8), 8);
  ASSERT_TRUE(whole.feed(tokens).ok());
  ASSERT_TRUE(chunks.feed_chunked(tokens, 5).ok());
  ASSERT_TRUE(single.feed_chunked(tokens, 1).ok());
  ASSERT_EQ(whole.logits().size(), tokens.size() * size_t(vocab_));
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* w = whole.logits().data() + t * vocab_;
    EXPECT_TRUE(bit_equal(w, chunks.logits().data() + t * vocab_, vocab_)) << "token " << t;
    EXPECT_TRUE(bit_equal(w, single.logits().data() + t * vocab_, vocab_)) << "token " << t;
  }
  // Logits are finite and not all equal (the model computes something).
  float lo = whole.logits()[0], hi = lo;
  for (float v : whole.logits()) {
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  EXPECT_GT(hi - lo, 1.0f);
}

TEST_P(ForwardTest, ScatteredBlockTableEqualsContiguous) {
  const auto tokens = some_tokens(21, vocab_, 2);
  SeqRunner contiguous(*model_, *backend_, 4, iota_table(6), 6);
  SeqRunner scattered(*model_, *backend_, 4, {9, 2, 7, 0, 11, 5}, 12);
  ASSERT_TRUE(contiguous.feed_chunked(tokens, 7).ok());
  ASSERT_TRUE(scattered.feed(std::vector<int32_t>(tokens.begin(), tokens.begin() + 6)).ok());
  ASSERT_TRUE(
      scattered.feed_chunked(std::vector<int32_t>(tokens.begin() + 6, tokens.end()), 1).ok());
  EXPECT_TRUE(
      bit_equal(contiguous.logits().data(), scattered.logits().data(), contiguous.logits().size()));
}

// Three sequences with different cached lengths, their tokens interleaved in one batch.
TEST_P(ForwardTest, BatchOfSequencesEqualsEachAlone) {
  const int bs = 4;
  const std::vector<std::vector<int32_t>> prompts = {
      some_tokens(7, vocab_, 3), some_tokens(12, vocab_, 4), some_tokens(3, vocab_, 5)};
  const std::vector<std::vector<int32_t>> next = {
      some_tokens(1, vocab_, 6), some_tokens(5, vocab_, 7), some_tokens(3, vocab_, 8)};
  // Alone: prompt, then the next tokens as one chunk.
  std::vector<std::vector<float>> alone;
  for (size_t s = 0; s < prompts.size(); ++s) {
    SeqRunner r(*model_, *backend_, bs, iota_table(6), 6);
    ASSERT_TRUE(r.feed(prompts[s]).ok());
    ASSERT_TRUE(r.feed(next[s]).ok());
    alone.emplace_back(r.logits().begin() + prompts[s].size() * vocab_, r.logits().end());
  }
  // Together: each sequence owns 6 blocks of one shared storage; prompts run as one batch too.
  KvStorage kv(model_->config(), bs, 18);
  ForwardBatch prefill;
  for (int s = 0; s < 3; ++s) {
    std::vector<int32_t> table;
    for (int b = 0; b < 6; ++b) table.push_back(3 * b + s);  // interleaved blocks
    prefill.seqs.push_back({table, 0});
  }
  for (size_t i = 0; i < 12; ++i) {
    for (int s = 0; s < 3; ++s) {
      if (i < prompts[s].size()) prefill.add_token(prompts[s][i], int32_t(i), s, bs, false);
    }
  }
  ForwardOutput out;
  ASSERT_TRUE(model_->forward(prefill, kv, out, *backend_).ok());
  ForwardBatch step;
  for (int s = 0; s < 3; ++s)
    step.seqs.push_back({prefill.seqs[s].block_table, int32_t(prompts[s].size())});
  std::vector<std::pair<int, size_t>> order;  // (sequence, index in next[s]) per batch token
  for (size_t i = 0; i < 5; ++i) {
    for (int s : {1, 2, 0}) {
      if (i < next[s].size()) {
        step.add_token(next[s][i], int32_t(prompts[s].size() + i), s, bs, true);
        order.push_back({s, i});
      }
    }
  }
  ASSERT_TRUE(model_->forward(step, kv, out, *backend_).ok());
  ASSERT_EQ(out.logits.size(), order.size() * size_t(vocab_));
  for (size_t r = 0; r < order.size(); ++r) {
    const auto [s, i] = order[r];
    EXPECT_TRUE(bit_equal(out.logits.data() + r * vocab_, alone[s].data() + i * vocab_, vocab_))
        << "sequence " << s << " token " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ForwardTest,
                         ::testing::Values("llama-q4_0.gguf", "llama-tied-q4_1.gguf",
                                           "llama-q5_1.gguf", "qwen2-q5_0.gguf", "qwen3-q4_0.gguf",
                                           "llama-hf-bf16", "qwen3-hf-f16-sharded",
                                           "llama-q4_k.gguf", "qwen2-q5_k.gguf",
                                           "qwen2-yarn-q8_0.gguf", "llama3-scaling-f32.gguf"),
                         param_name);

// The same float32 weights as GGUF (llama: q/k rows permuted, interleaved RoPE) and as a Hugging
// Face folder (half-split RoPE) give the same logits up to float rounding.
TEST(FormatsAgree, GgufAndHuggingFaceLayouts) {
  const std::unique_ptr<Backend> backend = make_cpu_backend(2);
  const std::pair<const char*, const char*> pairs[] = {
      {"llama-f32.gguf", "llama-hf-f32"},
      {"llama3-scaling-f32.gguf", "llama3-scaling-hf-f32"},
      {"qwen2-f32.gguf", "qwen2-hf-f32"},
  };
  for (const auto& [gguf, hf] : pairs) {
    std::string error;
    auto a = load_tiny(gguf, &error);
    ASSERT_NE(a, nullptr) << error;
    auto b = load_tiny(hf, &error);
    ASSERT_NE(b, nullptr) << error;
    // Long enough that llama3's scaled low frequencies matter.
    const auto tokens = some_tokens(80, a->config().vocab_size, 9);
    SeqRunner ra(*a, *backend, 16, iota_table(5), 5), rb(*b, *backend, 16, iota_table(5), 5);
    ASSERT_TRUE(ra.feed(tokens).ok());
    ASSERT_TRUE(rb.feed(tokens).ok());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < ra.logits().size(); ++i) {
      max_diff = std::max(max_diff, double(std::abs(ra.logits()[i] - rb.logits()[i])));
      max_abs = std::max(max_abs, double(std::abs(ra.logits()[i])));
    }
    EXPECT_LT(max_diff, 1e-4 * max_abs) << gguf << " vs " << hf;
  }
}

}  // namespace
}  // namespace dspark::test
