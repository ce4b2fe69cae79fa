// Tree attention through `attend` lists and hidden-state capture.
#include <gtest/gtest.h>

#include "dspark/backend_cpu.h"
#include "param_name.h"
#include "tiny_models.h"

namespace dspark::test {
namespace {

class TreeTest : public ::testing::TestWithParam<std::string> {};

// Tree over a cached prefix: r -> {a, b}, a -> c. Each tree token must get exactly the logits of
// the chain r, a, c (or r, b) run causally on top of the same prefix.
TEST_P(TreeTest, TreeEqualsChains) {
  std::string error;
  auto m = load_tiny(GetParam(), &error);
  ASSERT_NE(m, nullptr) << error;
  const std::unique_ptr<Backend> backend = make_cpu_backend(2);
  const int V = m->config().vocab_size, bs = 4;
  const auto prefix = some_tokens(6, V, 11);
  const auto t = some_tokens(4, V, 12);  // r, a, b, c
  const int32_t n = int32_t(prefix.size());

  SeqRunner tree(*m, *backend, bs, iota_table(3), 4);
  ASSERT_TRUE(tree.feed(prefix).ok());
  ForwardBatch b;
  b.seqs.push_back({tree.table(), n});
  // Tree tokens go to scratch slots in block 3, outside the sequence's table.
  b.tokens = {t[0], t[1], t[2], t[3]};
  b.positions = {n, n + 1, n + 1, n + 2};
  b.seq = {0, 0, 0, 0};
  b.kv_slots = {12, 13, 14, 15};
  b.attend = {{}, {0}, {0}, {0, 1}};
  b.logit_rows = {0, 1, 2, 3};
  ForwardOutput out;
  Status st = m->forward(b, tree.kv(), out, *backend);
  ASSERT_TRUE(st.ok()) << st.message();

  SeqRunner chain1(*m, *backend, bs, iota_table(3), 3), chain2(*m, *backend, bs, iota_table(3), 3);
  ASSERT_TRUE(chain1.feed(prefix).ok());
  ASSERT_TRUE(chain1.feed({t[0], t[1], t[3]}).ok());
  ASSERT_TRUE(chain2.feed(prefix).ok());
  ASSERT_TRUE(chain2.feed({t[0], t[2]}).ok());
  auto chain_row = [&](const SeqRunner& r, int i) { return r.logits().data() + (n + i) * V; };
  EXPECT_TRUE(bit_equal(out.logits.data() + 0 * V, chain_row(chain1, 0), V)) << "r";
  EXPECT_TRUE(bit_equal(out.logits.data() + 1 * V, chain_row(chain1, 1), V)) << "a";
  EXPECT_TRUE(bit_equal(out.logits.data() + 2 * V, chain_row(chain2, 1), V)) << "b";
  EXPECT_TRUE(bit_equal(out.logits.data() + 3 * V, chain_row(chain1, 2), V)) << "c";
}

// The tree r -> {a, b}, a -> {c, d}, c -> e over a cached prefix, expanded level by level as a
// drafter does ([r], then [a, b], then [c, d, e]): ancestors written by earlier forwards are
// reached through extra_slots (a and b share the table but not the SeqRef; e attends c inside the
// batch). Every node gets exactly the logits of the one-forward tree with attend lists and of
// the plain chains r a c e, r b and r a d.
TEST_P(TreeTest, LevelByLevelWithExtraSlotsEqualsOneForward) {
  std::string error;
  auto m = load_tiny(GetParam(), &error);
  ASSERT_NE(m, nullptr) << error;
  const std::unique_ptr<Backend> backend = make_cpu_backend(2);
  const int V = m->config().vocab_size, bs = 4;
  const auto prefix = some_tokens(6, V, 21);
  const auto t = some_tokens(6, V, 22);  // r, a, b, c, d, e
  const int32_t n = int32_t(prefix.size());
  const std::vector<int32_t> slot = {12, 13, 14, 15, 16, 17};  // scratch in blocks 3 and 4

  // One forward with attend lists.
  SeqRunner one(*m, *backend, bs, iota_table(3), 5);
  ASSERT_TRUE(one.feed(prefix).ok());
  ForwardBatch b;
  b.seqs.push_back({one.table(), n});
  b.tokens = t;
  b.positions = {n, n + 1, n + 1, n + 2, n + 2, n + 3};
  b.seq = {0, 0, 0, 0, 0, 0};
  b.kv_slots = slot;
  b.attend = {{}, {0}, {0}, {0, 1}, {0, 1}, {0, 1, 3}};
  b.logit_rows = {0, 1, 2, 3, 4, 5};
  ForwardOutput whole;
  Status st = m->forward(b, one.kv(), whole, *backend);
  ASSERT_TRUE(st.ok()) << st.message();

  // Level by level in a fresh storage; logits collected per node in r, a, b, c, d, e order.
  SeqRunner lv(*m, *backend, bs, iota_table(3), 5);
  ASSERT_TRUE(lv.feed(prefix).ok());
  std::vector<float> levels(size_t(6 * V));
  auto run_level = [&](const std::vector<SeqRef>& seqs, const std::vector<int32_t>& nodes,
                       const std::vector<int32_t>& seq_of) {
    ForwardBatch l;
    l.seqs = seqs;
    for (size_t i = 0; i < nodes.size(); ++i) {
      l.tokens.push_back(t[nodes[i]]);
      l.positions.push_back(b.positions[nodes[i]]);
      l.seq.push_back(seq_of[i]);
      l.kv_slots.push_back(slot[nodes[i]]);
      l.logit_rows.push_back(int32_t(i));
    }
    ForwardOutput out;
    Status level_st = m->forward(l, lv.kv(), out, *backend);
    ASSERT_TRUE(level_st.ok()) << level_st.message();
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::copy_n(out.logits.data() + i * V, V, levels.data() + size_t(nodes[i]) * V);
    }
  };
  const std::vector<int32_t>& table = lv.table();
  run_level({{table, n}}, {0}, {0});
  run_level({{table, n, {slot[0]}}, {table, n, {slot[0]}}}, {1, 2}, {0, 1});
  // c and e share a SeqRef (e attends c causally inside the batch); d has its own.
  run_level({{table, n, {slot[0], slot[1]}}, {table, n, {slot[0], slot[1]}}}, {3, 4, 5}, {0, 1, 0});
  if (HasFatalFailure()) return;
  const char* names[] = {"r", "a", "b", "c", "d", "e"};
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(bit_equal(levels.data() + i * V, whole.logits.data() + i * V, V)) << names[i];
  }

  SeqRunner ace(*m, *backend, bs, iota_table(3), 3), rb(*m, *backend, bs, iota_table(3), 3),
      ad(*m, *backend, bs, iota_table(3), 3);
  ASSERT_TRUE(ace.feed(prefix).ok());
  ASSERT_TRUE(ace.feed({t[0], t[1], t[3], t[5]}).ok());
  ASSERT_TRUE(rb.feed(prefix).ok());
  ASSERT_TRUE(rb.feed({t[0], t[2]}).ok());
  ASSERT_TRUE(ad.feed(prefix).ok());
  ASSERT_TRUE(ad.feed({t[0], t[1], t[4]}).ok());
  auto chain_row = [&](const SeqRunner& r, int i) { return r.logits().data() + (n + i) * V; };
  const float* chains[] = {chain_row(ace, 0), chain_row(ace, 1), chain_row(rb, 1),
                           chain_row(ace, 2), chain_row(ad, 2),  chain_row(ace, 3)};
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(bit_equal(levels.data() + i * V, chains[i], V)) << names[i] << " vs chain";
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, TreeTest,
                         ::testing::Values("llama-q4_0.gguf", "qwen2-q5_0.gguf",
                                           "qwen3-hf-f16-sharded"),
                         param_name);

// Layer -1 is the embedding row; the last layer's capture, final-normed and projected with the
// same kernels, reproduces the logits; a layer listed twice is captured twice.
TEST(HiddenCapture, ShapesAndValues) {
  for (const char* name : {"llama-tied-q4_1.gguf", "qwen2-q5_0.gguf"}) {
    std::string error;
    auto m = load_tiny(name, &error);
    ASSERT_NE(m, nullptr) << error;
    const ModelConfig& c = m->config();
    const int d = c.d_model, V = c.vocab_size, last = c.n_layers - 1;
    const std::unique_ptr<Backend> backend = make_cpu_backend(2);
    KvStorage kv(c, 8, 2);
    ForwardBatch b;
    b.seqs.push_back({{0, 1}, 0});
    const auto tokens = some_tokens(5, V, 13);
    for (int i = 0; i < 5; ++i) b.add_token(tokens[i], i, 0, 8, i == 4 || i == 1);
    b.capture_layers = {-1, 0, last, 0};
    ForwardOutput out;
    Status st = m->forward(b, kv, out, *backend);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_EQ(out.hidden.size(), size_t(5 * 4 * d));
    ASSERT_EQ(out.logits.size(), size_t(2 * V));

    const TensorInfo* embd = m->file().tensor("token_embd.weight");
    ASSERT_NE(embd, nullptr);
    const TensorInfo* norm = m->file().tensor("output_norm.weight");
    ASSERT_NE(norm, nullptr);
    const TensorInfo* head = c.tied_embeddings ? embd : m->file().tensor("output.weight");
    ASSERT_NE(head, nullptr);
    std::vector<float> row(d), ref(d), norm_w(d), logits(V);
    dequantize_row(norm->type, norm->data, norm_w.data(), d);
    for (int t = 0; t < 5; ++t) {
      const float* h = out.hidden.data() + size_t(t) * 4 * d;
      cpu::get_row(cpu::WeightView::from(*embd), tokens[t], row.data());
      EXPECT_TRUE(bit_equal(h, row.data(), d)) << name << " token " << t << " embeddings";
      // The loader's plain dequantization agrees (up to fused multiply-add rounding).
      dequantize_row(embd->type, embd->data + uint64_t(tokens[t]) * (embd->n_bytes / V), ref.data(),
                     d);
      for (int i = 0; i < d; ++i) EXPECT_NEAR(h[i], ref[i], 1e-6f * (1.0f + std::abs(ref[i])));
      EXPECT_TRUE(bit_equal(h + d, h + 3 * d, d)) << name << " token " << t << " layer 0 twice";
      EXPECT_FALSE(bit_equal(h + d, h + 2 * d, d)) << name << " token " << t;
    }
    for (int r = 0; r < 2; ++r) {
      const int t = b.logit_rows[r];
      std::copy_n(out.hidden.data() + (size_t(t) * 4 + 2) * d, d, row.data());
      cpu::rmsnorm(row.data(), norm_w.data(), 1, d, c.rms_eps, row.data());
      backend->matmul(WeightView::from(*head), row.data(), 1, logits.data());
      EXPECT_TRUE(bit_equal(logits.data(), out.logits.data() + size_t(r) * V, V))
          << name << " logits of token " << t;
    }
  }
}

}  // namespace
}  // namespace dspark::test
