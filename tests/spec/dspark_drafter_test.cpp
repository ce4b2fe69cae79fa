// The DSpark drafter over the tiny qwen3 target and its tiny checkpoint: loading errors, the
// chain it proposes, determinism, batching invariance, sampled q, context shared through the
// target's slots (copy-on-write copies, prefix-sharing block tables), calibrated confidences
// (confidence_temperatures); and over the tiny llama target (interleaved RoPE): the draft
// layers' rotate-half RoPE, and the target's own embedding / head standing in for missing ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>

#include "dspark_harness.h"

namespace dspark::spec {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::DSparkHarness;

std::unique_ptr<DSparkHarness> harness(int32_t max_requests = 8, uint64_t seed = 1) {
  std::string error;
  auto h = DSparkHarness::create(test::tiny_model(test::kTinyDSpark), max_requests, seed, &error);
  EXPECT_NE(h, nullptr) << error;
  return h;
}

// Deterministic token ids in [0, vocab) (the mask id excluded, as real text never holds it).
std::vector<int32_t> some_tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> out;
  uint32_t x = seed * 2654435761u + 12345u;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out.push_back(static_cast<int32_t>((x >> 8) % uint32_t(vocab - 1)));
  }
  return out;
}

std::vector<DraftTree> propose(Drafter& d, const std::vector<DraftInput>& inputs) {
  std::vector<DraftTree> out;
  Status st = d.propose(inputs, out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

void expect_same_tree(const DraftTree& a, const DraftTree& b, const std::string& what) {
  EXPECT_EQ(a.tokens, b.tokens) << what;
  EXPECT_EQ(a.parent, b.parent) << what;
  EXPECT_EQ(a.q_index, b.q_index) << what;
  ASSERT_EQ(a.confidence.size(), b.confidence.size()) << what;
  EXPECT_EQ(
      0, std::memcmp(a.confidence.data(), b.confidence.data(), a.confidence.size() * sizeof(float)))
      << what << ": confidences differ";
  ASSERT_EQ(a.q.size(), b.q.size()) << what;
  for (size_t i = 0; i < a.q.size(); ++i) {
    EXPECT_EQ(a.q[i].ids, b.q[i].ids) << what << " q " << i;
    EXPECT_EQ(a.q[i].probs, b.q[i].probs) << what << " q " << i;
  }
}

// ------------------------------------------------------------------------------ loading

// A copy of the tiny checkpoint in a fresh folder, its config.json edited by edit_config and its
// tensors renamed by `rename` (old name -> new name in the safetensors header).
class EditedCheckpoint {
 public:
  EditedCheckpoint(const std::string& tag, const std::function<void(json&)>& edit_config,
                   const std::pair<std::string, std::string>& rename = {},
                   const std::string& source = test::kTinyDSpark) {
    dir_ = fs::temp_directory_path() /
           ("dspark_edited_" + tag + "_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path src = test::tiny_model(source);
    std::ifstream cf(src / "config.json");
    json config = json::parse(cf);
    edit_config(config);
    std::ofstream(dir_ / "config.json") << config.dump(2);
    if (rename.first.empty()) {
      fs::copy_file(src / "model.safetensors", dir_ / "model.safetensors");
    } else {
      test::rewrite_safetensors(src / "model.safetensors", dir_ / "model.safetensors",
                                [&](json& header, size_t) {
                                  header[rename.second] = header[rename.first];
                                  header.erase(rename.first);
                                });
    }
  }
  ~EditedCheckpoint() { fs::remove_all(dir_); }
  std::string path() const { return dir_.string(); }

 private:
  fs::path dir_;
};

class DSparkLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    h_ = harness();
    ASSERT_NE(h_, nullptr);
  }
  // The error message of loading path against the tiny target (empty when it loaded).
  std::string load_error(const std::string& path) {
    auto d = h_->make_drafter(path, 4, 0);
    return d.ok() ? std::string() : d.error().message;
  }
  std::unique_ptr<DSparkHarness> h_;
};

TEST_F(DSparkLoading, TinyCheckpointLoads) {
  DSparkDrafter& d = h_->drafter();
  EXPECT_STREQ(d.name(), "dspark");
  EXPECT_EQ(d.feature_layers(), (std::vector<int32_t>{-1, 0}));
  EXPECT_EQ(d.block_size(), 4);
  EXPECT_EQ(d.mask_token(), h_->target().config().vocab_size - 1);
  EXPECT_EQ(d.checkpoint().markov_rank, 8);
  EXPECT_TRUE(d.checkpoint().confidence_head);
  EXPECT_EQ(d.checkpoint().layers.size(), 2u);
}

TEST_F(DSparkLoading, RejectsOtherArchitectures) {
  EditedCheckpoint ck("arch", [](json& c) { c["architectures"] = {"Gemma4DSparkModel"}; });
  const std::string e = load_error(ck.path());
  EXPECT_NE(e.find("unsupported architecture [Gemma4DSparkModel]"), std::string::npos) << e;
  EXPECT_NE(e.find("Qwen3DSparkModel"), std::string::npos) << e;
  // A target model folder is not a drafter either.
  const std::string t = load_error(test::tiny_model("qwen3-hf-f16-sharded"));
  EXPECT_NE(t.find("unsupported architecture [Qwen3ForCausalLM]"), std::string::npos) << t;
  const std::string g = load_error(test::tiny_model("qwen3-f16.gguf"));
  EXPECT_NE(g.find("not GGUF"), std::string::npos) << g;
  EXPECT_NE(load_error("/nonexistent/dspark").find("/nonexistent/dspark"), std::string::npos);
}

TEST_F(DSparkLoading, RejectsGeometryMismatch) {
  EditedCheckpoint heads("heads", [](json& c) { c["num_key_value_heads"] = 4; });
  const std::string e = load_error(heads.path());
  EXPECT_NE(e.find("num_key_value_heads is 4 but the target's is 2"), std::string::npos) << e;
  EditedCheckpoint depth("depth", [](json& c) { c["num_target_layers"] = 3; });
  const std::string e2 = load_error(depth.path());
  EXPECT_NE(e2.find("num_target_layers is 3 but the target's is 2"), std::string::npos) << e2;
  EditedCheckpoint vocab("vocab", [](json& c) { c["vocab_size"] = 512; });
  const std::string e3 = load_error(vocab.path());
  EXPECT_NE(e3.find("vocab_size is 512"), std::string::npos) << e3;
  EditedCheckpoint theta("theta", [](json& c) { c["rope_theta"] = 10000.0; });
  EXPECT_NE(load_error(theta.path()).find("rope_theta"), std::string::npos);
}

TEST_F(DSparkLoading, RejectsMissingAndMisshapenTensors) {
  EditedCheckpoint missing("missing", [](json&) {},
                           {"markov_head.markov_w2.weight", "markov_head.w2_renamed"});
  const std::string e = load_error(missing.path());
  EXPECT_NE(e.find("missing tensor 'markov_head.markov_w2.weight'"), std::string::npos) << e;
  EditedCheckpoint no_layer("nolayer", [](json&) {},
                            {"layers.1.self_attn.k_norm.weight", "layers.9.k_norm"});
  const std::string e2 = load_error(no_layer.path());
  EXPECT_NE(e2.find("missing tensor 'layers.1.self_attn.k_norm.weight'"), std::string::npos) << e2;
  // A rank the tensors do not have: markov_w1 is [vocab, 8].
  EditedCheckpoint rank("rank", [](json& c) { c["markov_rank"] = 4; });
  const std::string e3 = load_error(rank.path());
  EXPECT_NE(e3.find("tensor 'markov_head.markov_w1.weight' has shape [400, 8], expected [400, 4]"),
            std::string::npos)
      << e3;
  EditedCheckpoint ff("ff", [](json& c) { c["intermediate_size"] = 96; });
  EXPECT_NE(load_error(ff.path()).find("mlp.gate_proj.weight' has shape"), std::string::npos);
}

TEST_F(DSparkLoading, RejectsBadTargetLayerIds) {
  EditedCheckpoint last("last", [](json& c) { c["target_layer_ids"] = {0, 1}; });
  const std::string e = load_error(last.path());
  EXPECT_NE(e.find("target_layer_ids entry 1 is not in [-1, 0]"), std::string::npos) << e;
  EditedCheckpoint order("order", [](json& c) { c["target_layer_ids"] = {0, -1}; });
  const std::string e2 = load_error(order.path());
  EXPECT_NE(e2.find("target_layer_ids must be increasing"), std::string::npos) << e2;
  EditedCheckpoint low("low", [](json& c) { c["target_layer_ids"] = {-2, 0}; });
  EXPECT_NE(load_error(low.path()).find("entry -2"), std::string::npos);
  EditedCheckpoint empty("empty", [](json& c) { c["target_layer_ids"] = json::array(); });
  EXPECT_NE(load_error(empty.path()).find("target_layer_ids is empty"), std::string::npos);
  // One id: fc would be [d, d], but the checkpoint's is [d, 2d].
  EditedCheckpoint one("one", [](json& c) { c["target_layer_ids"] = {0}; });
  EXPECT_NE(
      load_error(one.path()).find("tensor 'fc.weight' has shape [64, 128], expected [64, 64]"),
      std::string::npos);
}

TEST_F(DSparkLoading, RejectsUnsupportedHeadsAndBadMask) {
  EditedCheckpoint gated("gated", [](json& c) { c["markov_head_type"] = "gated"; });
  const std::string e = load_error(gated.path());
  EXPECT_NE(e.find("markov_head_type 'gated' is not supported"), std::string::npos) << e;
  EditedCheckpoint mask("mask", [](json& c) { c["mask_token_id"] = 400; });
  const std::string e2 = load_error(mask.path());
  EXPECT_NE(e2.find("mask_token_id 400 is outside the vocabulary of 400"), std::string::npos) << e2;
  EditedCheckpoint block("block", [](json& c) { c["block_size"] = 0; });
  EXPECT_NE(load_error(block.path()).find("block_size 0"), std::string::npos);
}

TEST_F(DSparkLoading, RejectsBadPoolConfig) {
  DSparkDrafterConfig c;
  c.path = test::tiny_model(test::kTinyDSpark);
  auto none = DSparkDrafter::create(c);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no target"), std::string::npos);
  c.target_model = &h_->target();
  c.kv_blocks = 0;
  auto empty = DSparkDrafter::create(c);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("at least one block"), std::string::npos);
  c.kv_blocks = 8;
  c.max_requests = 0;
  EXPECT_FALSE(DSparkDrafter::create(c).ok());
}

// ------------------------------------------------------------------------------ proposals

// markov_rank 0 and no confidence head (the in-repo "DFlash" layout): drafts are the argmax of
// U itself and confidences the drafts' softmax probabilities.
TEST(DSparkDrafter, WithoutHeadsDraftsFromBaseLogits) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  EditedCheckpoint plain("plain", [](json& c) {
    c["markov_rank"] = 0;
    c["enable_confidence_head"] = false;
  });
  auto d = h->make_drafter(plain.path(), 4, 0);
  ASSERT_TRUE(d.ok()) << d.error().message;
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(9, V, 9);
  const std::vector<int32_t> table = {0, 1, 2};
  // The harness commits to its own drafter; this one gets the same features by hand.
  std::vector<float> features;
  ASSERT_TRUE(h->prefill(tokens, 0, 8, table, &features).ok());
  std::vector<int64_t> slots(8);
  std::vector<int32_t> positions(8);
  std::iota(slots.begin(), slots.end(), 0);
  std::iota(positions.begin(), positions.end(), 0);
  ASSERT_TRUE((*d)->commit_features(slots, positions, features).ok());
  (*d)->keep_logits(true);
  const DraftTree t = propose(**d, {DSparkHarness::input(1, tokens, table, 4, 4)})[0];
  ASSERT_EQ(t.size(), 4);
  const std::vector<float>& U = (*d)->last_logits()[0];
  ASSERT_EQ(U.size(), size_t(4 * V));
  for (int k = 0; k < 4; ++k) {
    const float* row = U.data() + k * V;
    const int32_t best = int32_t(std::max_element(row, row + V) - row);
    EXPECT_EQ(t.tokens[size_t(k)], best) << "node " << k;
    double total = 0.0;
    for (int i = 0; i < V; ++i) total += std::exp(double(row[i]) - row[best]);
    EXPECT_NEAR(t.confidence[size_t(k)], 1.0 / total, 1e-6) << "node " << k;
  }
  // A confidence head without the Markov feature is [1, d_model]; this file's is [1, d + 8].
  EditedCheckpoint no_markov("nomarkov", [](json& c) {
    c["markov_rank"] = 0;
    c["confidence_head_with_markov"] = false;
  });
  auto bad = h->make_drafter(no_markov.path(), 4, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'confidence_head.proj.weight' has shape [1, 72], expected "
                                     "[1, 64]"),
            std::string::npos)
      << bad.error().message;
}

TEST(DSparkDrafter, ChainShapeFollowsBudgets) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(11, V, 1);
  const std::vector<int32_t> table = {5, 2, 9};
  ASSERT_TRUE(h->prefill(tokens, 0, 10, table).ok());
  struct Budget {
    int32_t max_nodes, max_depth, expected;
  };
  for (const Budget& b : {Budget{16, 16, 4}, Budget{16, 2, 2}, Budget{3, 16, 3}, Budget{1, 1, 1},
                          Budget{0, 16, 0}, Budget{16, 0, 0}}) {
    const auto out =
        propose(h->drafter(), {DSparkHarness::input(1, tokens, table, b.max_nodes, b.max_depth)});
    ASSERT_EQ(out.size(), 1u);
    const DraftTree& t = out[0];
    ASSERT_EQ(t.size(), b.expected) << b.max_nodes << "/" << b.max_depth;
    ASSERT_TRUE(t.check(V).ok()) << t.check(V).message();
    for (int32_t i = 0; i < t.size(); ++i) {
      EXPECT_EQ(t.parent[size_t(i)], i - 1);  // one chain from the anchor
      EXPECT_EQ(t.q_index[size_t(i)], -1);    // greedy: deterministic proposals
      EXPECT_GT(t.confidence[size_t(i)], 0.0f);
      EXPECT_LT(t.confidence[size_t(i)], 1.0f);
    }
    EXPECT_TRUE(t.q.empty());
  }
  // Without context (the anchor is the first token) there is nothing to draft from.
  const std::vector<int32_t> one = {tokens[0]};
  EXPECT_EQ(propose(h->drafter(), {DSparkHarness::input(2, one, table, 4, 4)})[0].size(), 0);
}

TEST(DSparkDrafter, GreedyIsDeterministic) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(14, V, 2);
  const std::vector<int32_t> table = {0, 1, 2, 3};
  ASSERT_TRUE(h->prefill(tokens, 0, 13, table).ok());
  const DraftInput in = DSparkHarness::input(1, tokens, table, 4, 4);
  const DraftTree first = propose(h->drafter(), {in})[0];
  ASSERT_EQ(first.size(), 4);
  for (int rep = 0; rep < 3; ++rep) {
    expect_same_tree(first, propose(h->drafter(), {in})[0], "repeat " + std::to_string(rep));
  }
  // The block pass's scratch slots are never read as context: the proposal does not change
  // after other requests drafted in between.
  const std::vector<int32_t> other = some_tokens(9, V, 3);
  const std::vector<int32_t> other_table = {7, 8, 9};
  ASSERT_TRUE(h->prefill(other, 0, 8, other_table).ok());
  (void)propose(h->drafter(), {DSparkHarness::input(2, other, other_table, 4, 4)});
  expect_same_tree(first, propose(h->drafter(), {in})[0], "after another request");
  // The context matters: a different prompt in the same slots drafts differently.
  const std::vector<int32_t> changed = some_tokens(14, V, 4);
  ASSERT_TRUE(h->prefill(changed, 0, 13, table).ok());
  const DraftTree other_tree =
      propose(h->drafter(), {DSparkHarness::input(1, changed, table, 4, 4)})[0];
  EXPECT_TRUE(other_tree.tokens != first.tokens || other_tree.confidence != first.confidence);
}

TEST(DSparkDrafter, BatchedEqualsAlone) {
  // max_requests 2 splits the 5 requests into three block passes.
  for (int32_t max_requests : {8, 2}) {
    auto h = harness(max_requests);
    ASSERT_NE(h, nullptr);
    const int V = h->target().config().vocab_size;
    std::vector<std::vector<int32_t>> tokens, tables;
    std::vector<DraftInput> inputs;
    const int lengths[] = {2, 6, 13, 9, 21};
    for (int r = 0; r < 5; ++r) {
      tokens.push_back(some_tokens(lengths[r], V, 10 + uint32_t(r)));
      std::vector<int32_t> table;
      for (int b = 0; b * 4 < lengths[r]; ++b) table.push_back(r * 12 + 11 - b);  // paged
      tables.push_back(table);
      ASSERT_TRUE(h->prefill(tokens[size_t(r)], 0, lengths[r] - 1, tables[size_t(r)]).ok());
    }
    for (int r = 0; r < 5; ++r) {
      inputs.push_back(DSparkHarness::input(RequestId(r + 1), tokens[size_t(r)], tables[size_t(r)],
                                            4 - r % 2, 4));
    }
    const std::vector<DraftTree> together = propose(h->drafter(), inputs);
    ASSERT_EQ(together.size(), 5u);
    for (int r = 0; r < 5; ++r) {
      const DraftTree alone = propose(h->drafter(), {inputs[size_t(r)]})[0];
      EXPECT_EQ(alone.size(), 4 - r % 2);
      expect_same_tree(
          together[size_t(r)], alone,
          "request " + std::to_string(r) + " with max_requests " + std::to_string(max_requests));
    }
  }
}

TEST(DSparkDrafter, SampledNodesRecordTheirQ) {
  auto h = harness(8, 77);
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(18, V, 5);
  const std::vector<int32_t> table = {3, 4, 5, 6, 7};
  ASSERT_TRUE(h->prefill(tokens, 0, 17, table).ok());
  SamplingParams params;
  params.temperature = 1.3f;
  const DraftInput in = DSparkHarness::input(1, tokens, table, 8, 8, &params);
  std::vector<std::vector<int32_t>> seen;
  for (int rep = 0; rep < 20; ++rep) {
    const DraftTree t = propose(h->drafter(), {in})[0];
    ASSERT_EQ(t.size(), 4);
    ASSERT_TRUE(t.check(V).ok()) << t.check(V).message();
    ASSERT_EQ(t.q.size(), 4u);
    for (int32_t i = 0; i < t.size(); ++i) {
      ASSERT_EQ(t.q_index[size_t(i)], i);
      const SparseDist& q = t.q[size_t(i)];
      EXPECT_LE(q.ids.size(), 64u);
      EXPECT_GT(q.ids.size(), 1u);  // T = 1.3 over random logits: never a point mass
      const double total = std::accumulate(q.probs.begin(), q.probs.end(), 0.0);
      EXPECT_NEAR(total, 1.0, 1e-5);
      const auto at = std::find(q.ids.begin(), q.ids.end(), t.tokens[size_t(i)]);
      ASSERT_NE(at, q.ids.end());
      EXPECT_GT(q.probs[size_t(at - q.ids.begin())], 0.0f);
      // Ranked: probabilities never increase along q.
      for (size_t j = 1; j < q.probs.size(); ++j) EXPECT_LE(q.probs[j], q.probs[j - 1]);
    }
    seen.push_back(t.tokens);
  }
  // The drafter's generator moves: twenty chains are not all the same.
  EXPECT_NE(std::count(seen.begin(), seen.end(), seen[0]), 20);
  // The same seed replays the same draws.
  auto again = harness(8, 77);
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(again->prefill(tokens, 0, 17, table).ok());
  EXPECT_EQ(propose(again->drafter(), {in})[0].tokens, seen[0]);
}

TEST(DSparkDrafter, CopySlotsMirrorsTheTargetsCopies) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(11, V, 6);
  const std::vector<int32_t> table = {1, 2, 3};
  ASSERT_TRUE(h->prefill(tokens, 0, 10, table).ok());
  const DraftTree before = propose(h->drafter(), {DSparkHarness::input(1, tokens, table, 4, 4)})[0];
  // Copy-on-write of blocks 2 and 3 into 20 and 30 (the target copies its own K/V alike).
  h->drafter().copy_slots(2 * 4, 20 * 4, 4);
  h->drafter().copy_slots(3 * 4, 30 * 4, 4);
  const std::vector<int32_t> copied = {1, 20, 30};
  expect_same_tree(before,
                   propose(h->drafter(), {DSparkHarness::input(2, tokens, copied, 4, 4)})[0],
                   "after copy_slots");
  // Out-of-range copies are ignored, not performed.
  h->drafter().copy_slots(-4, 0, 4);
  h->drafter().copy_slots(0, DSparkHarness::kBlocks * 4 - 2, 4);
  h->drafter().copy_slots(0, 4, 0);
  expect_same_tree(before, propose(h->drafter(), {DSparkHarness::input(1, tokens, table, 4, 4)})[0],
                   "after ignored copies");
}

TEST(DSparkDrafter, DeferredProjectionEqualsProjectingEachCommit) {
  // The harness's drafter keeps commits until the next round; `eager` projects each at once.
  // Positions 8..10 are committed twice (the second time with other tokens, as when a slot is
  // reused) and their block is then copied: the later features must win, and the copy must
  // carry them.
  auto h = harness();
  ASSERT_NE(h, nullptr);
  auto eager = h->make_drafter(test::tiny_model(test::kTinyDSpark), 8, 1);
  ASSERT_TRUE(eager.ok()) << eager.error().message;
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(12, V, 31);
  std::vector<int32_t> fork = tokens;
  fork[8] = (fork[8] + 1) % (V - 1);
  const std::vector<int32_t> table = {1, 2, 3};
  auto commit_eager = [&](const std::vector<float>& features, int32_t from, int32_t to) {
    std::vector<int64_t> slots;
    std::vector<int32_t> positions;
    for (int32_t p = from; p < to; ++p) {
      slots.push_back(int64_t{table[size_t(p / 4)]} * 4 + p % 4);
      positions.push_back(p);
    }
    ASSERT_TRUE((*eager)->commit_features(slots, positions, features).ok());
    (*eager)->project_context();
  };
  std::vector<float> first, second;
  ASSERT_TRUE(h->prefill(tokens, 0, 11, table, &first).ok());
  commit_eager(first, 0, 11);
  ASSERT_TRUE(h->prefill(fork, 8, 11, table, &second).ok());
  commit_eager(second, 8, 11);
  h->drafter().copy_slots(3 * 4, 30 * 4, 4);
  (*eager)->copy_slots(3 * 4, 30 * 4, 4);
  const std::vector<int32_t> copied = {1, 2, 30};
  const DraftInput in = DSparkHarness::input(1, fork, copied, 4, 4);
  const DraftTree deferred = propose(h->drafter(), {in})[0];
  ASSERT_EQ(deferred.size(), 4);
  expect_same_tree(propose(**eager, {in})[0], deferred, "deferred against eager projection");
  // Rounds after the first read what was committed since.
  const std::vector<int32_t> longer = {1, 2, 30};
  std::vector<float> third;
  ASSERT_TRUE(h->prefill(fork, 11, 12, longer, &third).ok());
  std::vector<int64_t> slot = {30 * 4 + 3};
  std::vector<int32_t> position = {11};
  ASSERT_TRUE((*eager)->commit_features(slot, position, third).ok());
  fork.push_back(tokens[0]);
  const DraftInput next = DSparkHarness::input(1, fork, longer, 4, 4);
  expect_same_tree(propose(**eager, {next})[0], propose(h->drafter(), {next})[0], "the next round");
}

TEST(DSparkDrafter, FeaturesPastTheCapAreDroppedAfterRestsAndTheirContextDraftsNothing) {
  // `capped` keeps at most 6 tokens' features unprojected. Request 0 commits 9 on a drafting
  // server: they are projected and it drafts. After 16 rests, request 1 commits 9: all are
  // dropped, unprojected, and request 1 (and a block copied from its context) drafts nothing.
  // Request 2 commits 5 and drafts exactly as the harness's drafter (no cap) does; so does
  // request 3, whose new features re-fill request 1's old slots.
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  std::vector<float> probe;
  const std::vector<int32_t> t1 = some_tokens(10, V, 5), t2 = some_tokens(6, V, 9),
                             t3 = some_tokens(6, V, 13);
  const std::vector<int32_t> table1 = {1, 2, 3}, table2 = {4, 5};
  ASSERT_TRUE(h->prefill(t1, 0, 1, {7}, &probe).ok());
  const size_t row = probe.size();  // feature values per token
  auto capped = h->make_drafter(test::tiny_model(test::kTinyDSpark), 8, 1, false, 6 * row);
  ASSERT_TRUE(capped.ok()) << capped.error().message;
  auto commit = [&](const std::vector<int32_t>& tokens, int32_t n,
                    const std::vector<int32_t>& table) {
    std::vector<float> features;
    ASSERT_TRUE(h->prefill(tokens, 0, n, table, &features).ok());
    std::vector<int64_t> slots;
    std::vector<int32_t> positions;
    for (int32_t p = 0; p < n; ++p) {
      slots.push_back(int64_t{table[size_t(p / 4)]} * 4 + p % 4);
      positions.push_back(p);
    }
    ASSERT_TRUE((*capped)->commit_features(slots, positions, features).ok());
  };
  const std::vector<int32_t> table0 = {8, 9, 10};
  commit(t1, 9, table0);
  for (int i = 0; i < 15; ++i) (*capped)->rest();  // one short of dropping
  const DraftInput in0 = DSparkHarness::input(0, t1, table0, 4, 4);
  const DraftTree got0 = propose(**capped, {in0})[0];
  ASSERT_EQ(got0.size(), 4) << "projected, not dropped, before 16 rests";
  expect_same_tree(propose(h->drafter(), {in0})[0], got0, "a context projected at the cap");

  for (int i = 0; i < 16; ++i) (*capped)->rest();
  commit(t1, 9, table1);
  EXPECT_EQ(propose(**capped, {DSparkHarness::input(1, t1, table1, 4, 4)})[0].size(), 0)
      << "a request whose context was dropped must not draft";
  (*capped)->copy_slots(1 * 4, 30 * 4, 4);
  const std::vector<int32_t> short1(t1.begin(), t1.begin() + 4);
  EXPECT_EQ(propose(**capped, {DSparkHarness::input(4, short1, {30}, 4, 4)})[0].size(), 0)
      << "a copied block keeps its dropped mark";

  commit(t2, 5, table2);
  const DraftInput in2 = DSparkHarness::input(2, t2, table2, 4, 4);
  const DraftTree got2 = propose(**capped, {in2})[0];
  ASSERT_EQ(got2.size(), 4);
  expect_same_tree(propose(h->drafter(), {in2})[0], got2, "a request committed after the drop");
  commit(t3, 5, table1);
  const DraftInput in3 = DSparkHarness::input(3, t3, table1, 4, 4);
  const DraftTree got3 = propose(**capped, {in3})[0];
  ASSERT_EQ(got3.size(), 4);
  expect_same_tree(propose(h->drafter(), {in3})[0], got3, "dropped slots filled again");
}

TEST(DSparkDrafter, SharedPrefixBlocksShareContext) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(15, V, 7);
  // Request 1 owns blocks 0, 1, 2, 3; request 2 reuses the cached blocks 0 and 1 (positions
  // 0..7) and computes only positions 8..13 into its own blocks 4 and 5.
  const std::vector<int32_t> t1 = {0, 1, 2, 3}, t2 = {0, 1, 4, 5};
  ASSERT_TRUE(h->prefill(tokens, 0, 14, t1).ok());
  ASSERT_TRUE(h->prefill(tokens, 8, 14, t2).ok());
  const auto out = propose(h->drafter(), {DSparkHarness::input(1, tokens, t1, 4, 4),
                                          DSparkHarness::input(2, tokens, t2, 4, 4)});
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].size(), 4);
  expect_same_tree(out[0], out[1], "prefix-shared request");
  // A fork: both requests continue from the shared 8 positions with different tokens.
  std::vector<int32_t> fork = tokens;
  fork[9] = (fork[9] + 1) % (V - 1);
  ASSERT_TRUE(h->prefill(fork, 8, 14, t2).ok());
  const auto forked = propose(h->drafter(), {DSparkHarness::input(1, tokens, t1, 4, 4),
                                             DSparkHarness::input(2, fork, t2, 4, 4)});
  expect_same_tree(out[0], forked[0], "the untouched request");
  EXPECT_TRUE(forked[1].tokens != out[0].tokens || forked[1].confidence != out[0].confidence);
}

TEST(DSparkDrafter, RejectsBadInputs) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  DSparkDrafter& d = h->drafter();
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(10, V, 8);
  std::vector<DraftTree> out;
  // The context of 9 positions needs 3 blocks of 4.
  const std::vector<int32_t> short_table = {0, 1};
  Status st =
      d.propose(std::vector<DraftInput>{DSparkHarness::input(4, tokens, short_table, 4, 4)}, out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("block table has 2 blocks; the context of 9 positions needs 3"),
            std::string::npos)
      << st.message();
  const std::vector<int32_t> bad_block = {0, 1, 64};
  st = d.propose(std::vector<DraftInput>{DSparkHarness::input(4, tokens, bad_block, 4, 4)}, out);
  EXPECT_NE(st.message().find("entry 2 is 64"), std::string::npos) << st.message();
  std::vector<int32_t> bad_anchor = tokens;
  bad_anchor.back() = V;
  const std::vector<int32_t> table = {0, 1, 2};
  st = d.propose(std::vector<DraftInput>{DSparkHarness::input(4, bad_anchor, table, 4, 4)}, out);
  EXPECT_NE(st.message().find("anchor token 400"), std::string::npos) << st.message();

  const int64_t row = 2 * 64;  // two feature layers of d_model 64
  std::vector<float> features(size_t(2 * row), 0.5f);
  const std::vector<int64_t> slots = {0, 1};
  const std::vector<int32_t> positions = {0, 1};
  EXPECT_TRUE(d.commit_features(slots, positions, features).ok());
  st = d.commit_features(slots, positions, std::span<const float>(features).first(size_t(row)));
  EXPECT_NE(st.message().find("expected 128 per token"), std::string::npos) << st.message();
  const std::vector<int64_t> outside = {0, DSparkHarness::kBlocks * 4};
  st = d.commit_features(outside, positions, features);
  EXPECT_NE(st.message().find("slot 256 is outside the target's 256 slots"), std::string::npos)
      << st.message();
  const std::vector<int32_t> negative = {0, -1};
  EXPECT_FALSE(d.commit_features(slots, negative, features).ok());
}

// ------------------------------------------------------------------------------ calibration

// Runs tokens [0, n) through h's target and commits the features to h's drafter and to `other`
// (another drafter over the same target) at the same slots.
void prefill_both(DSparkHarness& h, DSparkDrafter& other, const std::vector<int32_t>& tokens,
                  int32_t n, const std::vector<int32_t>& table) {
  std::vector<float> features;
  ASSERT_TRUE(h.prefill(tokens, 0, n, table, &features).ok());
  std::vector<int64_t> slots;
  std::vector<int32_t> positions;
  for (int32_t p = 0; p < n; ++p) {
    const int32_t bs = DSparkHarness::kBlockSize;
    slots.push_back(int64_t{table[size_t(p / bs)]} * bs + p % bs);
    positions.push_back(p);
  }
  ASSERT_TRUE(other.commit_features(slots, positions, features).ok());
}

TEST(DSparkConfidence, TemperaturesScaleTheHeadsLogit) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const std::vector<float> temps = {0.5f, 1.0f, 2.0f, 4.0f};
  EditedCheckpoint calibrated("temps", [&](json& c) { c["confidence_temperatures"] = temps; });
  auto d = h->make_drafter(calibrated.path(), 4, 1);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ((*d)->checkpoint().confidence_temperatures, temps);
  EXPECT_TRUE(h->drafter().checkpoint().confidence_temperatures.empty());
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(12, V, 21);
  const std::vector<int32_t> table = {6, 3, 9};
  prefill_both(*h, **d, tokens, 11, table);
  const DraftInput in = DSparkHarness::input(1, tokens, table, 4, 4);
  const DraftTree plain = propose(h->drafter(), {in})[0];
  const DraftTree scaled = propose(**d, {in})[0];
  ASSERT_EQ(plain.size(), 4);
  EXPECT_EQ(scaled.tokens, plain.tokens);  // drafts do not depend on the confidence head
  for (size_t k = 0; k < 4; ++k) {
    // c' = sigmoid(z / T_k) with z = logit(c).
    const double c = plain.confidence[k];
    const double z = std::log(c / (1.0 - c));
    EXPECT_NEAR(scaled.confidence[k], 1.0 / (1.0 + std::exp(-z / temps[k])), 2e-6) << k;
  }
  EXPECT_EQ(scaled.confidence[1], plain.confidence[1]);  // T = 1
}

TEST(DSparkConfidence, RejectsBadTemperatures) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  auto error_with = [&](const std::string& tag, const std::function<void(json&)>& edit) {
    EditedCheckpoint ck(tag, edit);
    auto d = h->make_drafter(ck.path(), 4, 0);
    return d.ok() ? std::string() : d.error().message;
  };
  std::string e = error_with("tlen", [](json& c) { c["confidence_temperatures"] = {1.0, 2.0}; });
  EXPECT_NE(e.find("confidence_temperatures has 2 entries; it needs one per block position "
                   "(block_size 4)"),
            std::string::npos)
      << e;
  e = error_with("tzero", [](json& c) { c["confidence_temperatures"] = {1.0, 0.0, 1.0, 1.0}; });
  EXPECT_NE(e.find("confidence_temperatures entry 1 is 0.0"), std::string::npos) << e;
  EXPECT_NE(e.find("must be finite and positive"), std::string::npos) << e;
  e = error_with("tneg", [](json& c) { c["confidence_temperatures"] = {1.0, 1.0, 1.0, -2.0}; });
  EXPECT_NE(e.find("entry 3 is -2.0"), std::string::npos) << e;
  // Overflows the float it is used as.
  e = error_with("tbig", [](json& c) { c["confidence_temperatures"] = {1e300, 1.0, 1.0, 1.0}; });
  EXPECT_NE(e.find("entry 0 is"), std::string::npos) << e;
  e = error_with("tstr", [](json& c) { c["confidence_temperatures"] = {1.0, "hot", 1.0, 1.0}; });
  EXPECT_NE(e.find("confidence_temperatures"), std::string::npos) << e;
  e = error_with("tscalar", [](json& c) { c["confidence_temperatures"] = 1.5; });
  EXPECT_NE(e.find("confidence_temperatures"), std::string::npos) << e;
  e = error_with("thead", [](json& c) {
    c["confidence_temperatures"] = {1.0, 1.0, 1.0, 1.0};
    c["enable_confidence_head"] = false;
  });
  EXPECT_NE(e.find("confidence_temperatures is given but enable_confidence_head is false"),
            std::string::npos)
      << e;
}

// ------------------------------------------------------------------------------ llama target

std::unique_ptr<DSparkHarness> llama_harness(const std::string& drafter) {
  std::string error;
  auto h = DSparkHarness::create(test::tiny_model(drafter), 8, 3, &error, test::kTinyLlamaTarget);
  EXPECT_NE(h, nullptr) << error;
  return h;
}

// The GGUF llama target rotates interleaved pairs (its q/k rows were permuted at conversion);
// the draft layers are Hugging Face ones and rotate halves (dspark_ref.py checks the values).
TEST(DSparkLlama, DraftLayersRotateHalvesWhateverTheTargetsLayout) {
  auto h = llama_harness(test::kTinyLlamaDSpark);
  ASSERT_NE(h, nullptr);
  const ModelConfig& target = h->target().config();
  const ModelConfig& draft = h->drafter().checkpoint().layers_config;
  EXPECT_EQ(target.rope.layout, RopeLayout::Interleaved);
  EXPECT_EQ(draft.rope.layout, RopeLayout::Neox);
  EXPECT_EQ(draft.rope.rot_dims, target.head_dim);
  EXPECT_EQ(draft.rope.theta, target.rope.theta);
  EXPECT_EQ(draft.rope.scaling, target.rope.scaling);
}

// Drafts, confidences, q and logits of fresh drafters over the checkpoints at path_a and path_b
// (same seed, h's target) on the same committed context, greedy and sampled, compared bit for
// bit. Returns the drafter over path_b for more checks.
std::unique_ptr<DSparkDrafter> expect_same_drafts(DSparkHarness& h, const std::string& path_a,
                                                  const std::string& path_b) {
  auto a = h.make_drafter(path_a, 8, 3);
  auto b = h.make_drafter(path_b, 8, 3);
  EXPECT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(b.ok()) << b.error().message;
  if (!a.ok() || !b.ok()) return nullptr;
  const int V = h.target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(14, V, 31);
  const std::vector<int32_t> table = {2, 7, 1, 4};
  prefill_both(h, **a, tokens, 13, table);
  prefill_both(h, **b, tokens, 13, table);
  (*a)->keep_logits(true);
  (*b)->keep_logits(true);
  SamplingParams sampled;
  sampled.temperature = 0.9f;
  const SamplingParams* modes[] = {nullptr, &sampled};  // greedy, then sampled
  for (const SamplingParams* params : modes) {
    const std::string what = path_b + (params ? " sampled" : " greedy");
    const DraftInput in = DSparkHarness::input(1, tokens, table, 4, 4, params);
    const DraftTree ta = propose(**a, {in})[0];
    const DraftTree tb = propose(**b, {in})[0];
    EXPECT_EQ(ta.size(), 4) << what;
    expect_same_tree(ta, tb, what);
    const std::vector<float>& ua = (*a)->last_logits()[0];
    const std::vector<float>& ub = (*b)->last_logits()[0];
    EXPECT_EQ(ua.size(), size_t(4 * V)) << what;
    EXPECT_TRUE(ua.size() == ub.size() &&
                std::memcmp(ua.data(), ub.data(), ua.size() * sizeof(float)) == 0)
        << what << ": base logits differ";
  }
  return std::move(b).value();
}

// dspark-llama-shared is dspark-llama without embed_tokens / lm_head: the drafter reads the
// target's own (F32, so the same values as the copies) and drafts exactly the same.
TEST(DSparkLlama, TargetsEmbeddingAndHeadStandInForMissingCopies) {
  auto h = llama_harness(test::kTinyLlamaDSpark);
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->drafter().checkpoint().own_embed);
  EXPECT_TRUE(h->drafter().checkpoint().own_lm_head);
  const std::string full = test::tiny_model(test::kTinyLlamaDSpark);
  auto shared = expect_same_drafts(*h, full, test::tiny_model(test::kTinyLlamaDSparkShared));
  ASSERT_NE(shared, nullptr);
  EXPECT_FALSE(shared->checkpoint().own_embed);
  EXPECT_FALSE(shared->checkpoint().own_lm_head);
  EXPECT_EQ(shared->checkpoint().embed.data, h->target().token_embedding().data);  // in place
  EXPECT_EQ(shared->checkpoint().lm_head.data, h->target().output_head().data);

  // Each tensor falls back on its own: a checkpoint lacking only lm_head, then only the embedding.
  EditedCheckpoint no_head(
      "nohead", [](json&) {}, {"lm_head.weight", "unused.lm_head"}, test::kTinyLlamaDSpark);
  auto half = expect_same_drafts(*h, full, no_head.path());
  ASSERT_NE(half, nullptr);
  EXPECT_TRUE(half->checkpoint().own_embed);
  EXPECT_FALSE(half->checkpoint().own_lm_head);
  EditedCheckpoint no_embed(
      "noembed", [](json&) {}, {"embed_tokens.weight", "unused.embed"}, test::kTinyLlamaDSpark);
  auto other_half = expect_same_drafts(*h, full, no_embed.path());
  ASSERT_NE(other_half, nullptr);
  EXPECT_FALSE(other_half->checkpoint().own_embed);
  EXPECT_TRUE(other_half->checkpoint().own_lm_head);
}

// A present copy is used even where it differs from the target's (a quantized target keeps
// its drafter's BF16 head), and its shape is still checked.
TEST(DSparkLlama, PresentCopiesAreCheckedAndUsed) {
  auto h = llama_harness(test::kTinyLlamaDSparkShared);
  ASSERT_NE(h, nullptr);
  auto full = h->make_drafter(test::tiny_model(test::kTinyLlamaDSpark), 8, 3);
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_NE((*full)->checkpoint().lm_head.data, h->target().output_head().data);
  EditedCheckpoint wrong(
      "wrongembed", [](json&) {}, {"markov_head.markov_w1.weight", "embed_tokens.weight"},
      test::kTinyLlamaDSparkShared);
  auto bad = h->make_drafter(wrong.path(), 8, 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("tensor 'embed_tokens.weight' has shape [400, 8], expected "
                                     "[400, 64]"),
            std::string::npos)
      << bad.error().message;
}

}  // namespace
}  // namespace dspark::spec
