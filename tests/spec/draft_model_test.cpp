// The draft-model drafter over the tiny generated models: self-drafting follows the target's
// greedy path, trees respect their budgets, the draft KV catches up exactly as a fresh drafter
// would, pool exhaustion degrades to empty trees, and sampled drafts record the q they drew from.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>

#include "chi_square.h"
#include "draft_input.h"
#include "model/tiny_models.h"
#include "param_name.h"
#include "spec/draft_model_drafter.h"

namespace dspark::spec {
namespace {

using test::SeqRunner;

std::shared_ptr<const Model> load(const std::string& name) {
  std::string error;
  std::shared_ptr<const Model> m = test::load_tiny(name, &error);
  EXPECT_NE(m, nullptr) << error;
  return m;
}

std::unique_ptr<DraftModelDrafter> make(std::shared_ptr<const Model> m, Backend& backend,
                                        int32_t kv_blocks, int32_t top_k, int32_t block_size = 4) {
  DraftModelConfig c;
  c.model = std::move(m);
  c.kv_blocks = kv_blocks;
  c.block_size = block_size;
  c.top_k = top_k;
  c.backend = &backend;
  auto d = DraftModelDrafter::create(c);
  EXPECT_TRUE(d.ok()) << d.error().message;
  return d.ok() ? std::move(d.value()) : nullptr;
}

DraftInput input(RequestId id, const std::vector<int32_t>& tokens, int32_t max_nodes,
                 int32_t max_depth, const SamplingParams* params = nullptr) {
  return test::draft_input(id, tokens, max_nodes, max_depth, params);
}

// One request's tree.
DraftTree propose_one(Drafter& d, const DraftInput& in) {
  std::vector<DraftTree> out;
  Status st = d.propose(std::span<const DraftInput>(&in, 1), out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out.empty() ? DraftTree{} : out[0];
}

int32_t first_max(const float* row, int vocab) {
  return int32_t(std::max_element(row, row + vocab) - row);
}

// Plain greedy decoding: the n tokens after prompt and the raw logits before each ([n, vocab]).
std::vector<int32_t> greedy_continuation(const Model& m, Backend& backend,
                                         const std::vector<int32_t>& prompt, int n,
                                         std::vector<float>* logits) {
  const int V = m.config().vocab_size;
  const int n_blocks = int(prompt.size()) / 4 + n / 4 + 2;
  SeqRunner r(m, backend, 4, test::iota_table(n_blocks), n_blocks);
  EXPECT_TRUE(r.feed(prompt).ok());
  std::vector<int32_t> out;
  logits->clear();
  for (int i = 0; i < n; ++i) {
    const float* row = r.logits().data() + (r.logits().size() - size_t(V));
    logits->insert(logits->end(), row, row + V);
    out.push_back(first_max(row, V));
    EXPECT_TRUE(r.feed({out.back()}).ok());
  }
  return out;
}

std::vector<int32_t> children(const DraftTree& t, int32_t node) {
  std::vector<int32_t> c;
  for (int32_t i = 0; i < t.size(); ++i) {
    if (t.parent[size_t(i)] == node) c.push_back(i);
  }
  return c;
}

// The first-child chain from the anchor (the drafter's most likely path), at most max_len nodes.
std::vector<int32_t> first_child_chain(const DraftTree& t, size_t max_len) {
  std::vector<int32_t> chain;
  for (int32_t node = -1; chain.size() < max_len;) {
    const auto kids = children(t, node);
    if (kids.empty()) break;
    node = kids.front();
    chain.push_back(node);
  }
  return chain;
}

int32_t max_depth_of(const DraftTree& t) {
  int32_t d = 0;
  for (int32_t i = 0; i < t.size(); ++i) d = std::max(d, t.depth(i));
  return d;
}

// Product of confidences from the anchor to each node.
std::vector<double> path_probs(const DraftTree& t) {
  std::vector<double> p(size_t(t.size()));
  for (int32_t i = 0; i < t.size(); ++i) {
    const int32_t up = t.parent[size_t(i)];
    p[size_t(i)] = (up < 0 ? 1.0 : p[size_t(up)]) * double(t.confidence[size_t(i)]);
  }
  return p;
}

void expect_same_tree(const DraftTree& a, const DraftTree& b, const std::string& what) {
  EXPECT_EQ(a.tokens, b.tokens) << what;
  EXPECT_EQ(a.parent, b.parent) << what;
  EXPECT_EQ(a.q_index, b.q_index) << what;
  ASSERT_EQ(a.confidence.size(), b.confidence.size()) << what;
  EXPECT_TRUE(test::bit_equal(a.confidence.data(), b.confidence.data(), a.confidence.size()))
      << what;
  ASSERT_EQ(a.q.size(), b.q.size()) << what;
  for (size_t i = 0; i < a.q.size(); ++i) {
    EXPECT_EQ(a.q[i].ids, b.q[i].ids) << what << " q " << i;
    EXPECT_EQ(a.q[i].probs, b.q[i].probs) << what << " q " << i;
  }
}

class SelfDraft : public ::testing::TestWithParam<std::string> {};

// The target as its own draft, greedy: the chain of first (most likely) children is the
// target's greedy continuation, with the target's softmax probabilities as confidences.
TEST_P(SelfDraft, FirstChildChainIsTheGreedyPath) {
  auto m = load(GetParam());
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  struct Shape {
    int32_t top_k, max_depth, max_nodes;  // max_nodes = the full tree: the path always fits
  };
  const Shape shapes[] = {{2, 1, 2}, {2, 4, 30}, {3, 3, 39}, {1, 6, 6}};
  RequestId id = 1;
  for (const Shape& s : shapes) {
    auto d = make(m, *backend, 64, s.top_k);
    ASSERT_NE(d, nullptr);
    for (int len : {1, 7, 23}) {
      const auto prompt = test::some_tokens(len, V, uint32_t(len * 31 + s.top_k));
      std::vector<float> logits;
      const auto want = greedy_continuation(*m, *backend, prompt, s.max_depth, &logits);
      const DraftTree t = propose_one(*d, input(id++, prompt, s.max_nodes, s.max_depth));
      const std::string what = "top_k " + std::to_string(s.top_k) + " depth " +
                               std::to_string(s.max_depth) + " prompt " + std::to_string(len);
      ASSERT_TRUE(t.check(V).ok()) << what << ": " << t.check(V).message();
      EXPECT_EQ(t.size(), s.max_nodes) << what;
      const auto chain = first_child_chain(t, size_t(s.max_depth));
      ASSERT_EQ(chain.size(), size_t(s.max_depth)) << what;
      for (int32_t k = 0; k < s.max_depth; ++k) {
        const int32_t node = chain[size_t(k)];
        EXPECT_EQ(t.tokens[size_t(node)], want[size_t(k)]) << what << " depth " << k + 1;
        const float* row = logits.data() + size_t(k) * V;
        double total = 0;
        for (int i = 0; i < V; ++i) total += std::exp(double(row[i]) - double(row[want[k]]));
        EXPECT_NEAR(t.confidence[size_t(node)], 1.0 / total, 1e-6) << what << " depth " << k + 1;
        EXPECT_EQ(t.q_index[size_t(node)], -1);
      }
    }
    EXPECT_FALSE(d->check_idle().ok()) << "requests are still alive";
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, SelfDraft,
                         ::testing::Values("llama-q4_0.gguf", "qwen2-q5_0.gguf",
                                           "qwen3-hf-f16-sharded"),
                         test::param_name);

// Budgets hold; with a budget below the full tree the drafter keeps exactly the best nodes of
// the full tree by path probability (its pruning of expansions loses nothing).
TEST(DraftModel, TreesRespectBudgetsAndKeepTheBestNodes) {
  auto m = load("llama-q4_0.gguf");
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  const auto prompt = test::some_tokens(9, V, 5);
  for (int32_t top_k : {1, 2, 3}) {
    auto d = make(m, *backend, 64, top_k);
    ASSERT_NE(d, nullptr);
    for (int32_t depth : {1, 2, 4}) {
      int32_t full = 0;
      for (int32_t l = 1, w = 1; l <= depth; ++l) full += (w *= top_k);
      const DraftTree whole = propose_one(*d, input(1, prompt, full, depth));
      ASSERT_TRUE(whole.check(V).ok()) << whole.check(V).message();
      ASSERT_EQ(whole.size(), full);
      const auto path = path_probs(whole);
      std::vector<int32_t> order(size_t(whole.size()));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return path[size_t(a)] > path[size_t(b)]; });
      for (int32_t budget : {1, 2, 5, full - 1}) {
        if (budget < 1 || budget > full) continue;
        const std::string what = "top_k " + std::to_string(top_k) + " depth " +
                                 std::to_string(depth) + " budget " + std::to_string(budget);
        const DraftTree t = propose_one(*d, input(2, prompt, budget, depth));
        ASSERT_TRUE(t.check(V).ok()) << what << ": " << t.check(V).message();
        EXPECT_EQ(t.size(), budget) << what;
        EXPECT_LE(max_depth_of(t), depth) << what;
        for (int32_t i = -1; i < t.size(); ++i) {
          EXPECT_LE(children(t, i).size(), size_t(top_k)) << what << " node " << i;
        }
        std::vector<int32_t> best(order.begin(), order.begin() + budget);
        std::sort(best.begin(), best.end());
        const DraftTree expected = whole.subset(best);
        expect_same_tree(t, expected, what);
        d->release(2);
      }
      d->release(1);
    }
    EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
  }
}

// An engine-like run: several requests, prompts sharing a prefix (prefix cache hits), one longer
// than a catch-up chunk, accepted tokens appended several at a time, a repeated call without new
// tokens and a changed history. Every tree equals the one of a fresh drafter that sees the whole
// sequence at once.
void check_catch_up(const SamplingParams* params) {
  auto m = load("qwen2-q5_0.gguf");
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  auto d = make(m, *backend, 512, 2);
  ASSERT_NE(d, nullptr);
  const auto shared = test::some_tokens(21, V, 40);
  std::vector<std::vector<int32_t>> seqs = {shared, shared, test::some_tokens(600, V, 41),
                                            test::some_tokens(3, V, 42)};
  seqs[1].push_back(7);
  seqs[3] = {seqs[3][0]};  // a one-token prompt
  const std::vector<RequestId> ids = {10, 11, 12, 13};
  auto extra = test::some_tokens(200, V, 43);
  size_t next_extra = 0;
  for (int round = 0; round < 7; ++round) {
    std::vector<DraftInput> inputs;
    for (size_t r = 0; r < seqs.size(); ++r) {
      inputs.push_back(input(ids[r], seqs[r], 6 + int32_t(r), 3, params));
    }
    std::vector<DraftTree> trees;
    Status st = d->propose(inputs, trees);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_EQ(trees.size(), seqs.size());
    for (size_t r = 0; r < seqs.size(); ++r) {
      const std::string what = "round " + std::to_string(round) + " request " + std::to_string(r);
      ASSERT_TRUE(trees[r].check(V).ok()) << what << ": " << trees[r].check(V).message();
      EXPECT_GT(trees[r].size(), 0) << what;
      auto fresh = make(m, *backend, 512, 2);
      ASSERT_NE(fresh, nullptr);
      expect_same_tree(trees[r], propose_one(*fresh, inputs[r]), what);
    }
    // What an engine commits: part of the first-child chain, then a bonus token.
    for (size_t r = 0; r < seqs.size(); ++r) {
      if (round == 3 && r == 0) continue;  // proposed again next round without new tokens
      const DraftTree& t = trees[r];
      for (int32_t node : first_child_chain(t, (round + r) % 4)) {
        seqs[r].push_back(t.tokens[size_t(node)]);
      }
      seqs[r].push_back(extra[next_extra++ % extra.size()]);
    }
    if (round == 4) seqs[1][5] = (seqs[1][5] + 1) % V;  // preempted and recomputed differently
  }
  // A prompt cached in full (two blocks): the new request shares the first block, copies the
  // second on write and recomputes only its last token.
  const auto cached = test::some_tokens(8, V, 44);
  EXPECT_GT(propose_one(*d, input(20, cached, 5, 3, params)).size(), 0);
  d->release(20);
  const int64_t hits = d->blocks().n_prefix_hit_tokens();
  const DraftTree shared_tree = propose_one(*d, input(21, cached, 5, 3, params));
  EXPECT_EQ(d->blocks().n_prefix_hit_tokens() - hits, 7);
  auto fresh = make(m, *backend, 512, 2);
  ASSERT_NE(fresh, nullptr);
  expect_same_tree(shared_tree, propose_one(*fresh, input(21, cached, 5, 3, params)), "cached");
  d->release(21);
  for (RequestId id : ids) d->release(id);
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
}

TEST(DraftModel, CatchUpMatchesAFreshDrafterGreedy) {
  check_catch_up(nullptr);
}

TEST(DraftModel, CatchUpMatchesAFreshDrafterSampling) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.95f;
  p.seed = 99;
  check_catch_up(&p);
}

// A request whose KV does not fit gets an empty tree while the others draft; a tree whose
// scratch runs out stops growing; release leaves the pool idle.
TEST(DraftModel, PoolExhaustionGivesEmptyTreesAndReleaseFreesEverything) {
  auto m = load("qwen3-q4_0.gguf");
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  auto d = make(m, *backend, 6, 2);  // 24 slots
  ASSERT_NE(d, nullptr);
  const auto big = test::some_tokens(30, V, 50);
  const auto small = test::some_tokens(5, V, 51);
  std::vector<DraftInput> inputs = {input(1, big, 6, 3), input(2, small, 6, 3)};
  std::vector<DraftTree> trees;
  Status st = d->propose(inputs, trees);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(trees.size(), 2u);
  EXPECT_EQ(trees[0].size(), 0);
  EXPECT_EQ(trees[1].size(), 6);
  EXPECT_FALSE(d->blocks().has_request(1));
  EXPECT_EQ(d->blocks().n_requests(), 1);

  // 4 of 6 blocks hold a 14-token prompt; a 30-node budget needs more scratch than is left, so
  // the tree stops at the level that could not be allocated.
  const auto mid = test::some_tokens(14, V, 52);
  const DraftTree cut = propose_one(*d, input(3, mid, 30, 4));
  ASSERT_TRUE(cut.check(V).ok()) << cut.check(V).message();
  EXPECT_GT(cut.size(), 0);
  EXPECT_LT(max_depth_of(cut), 4);
  EXPECT_FALSE(d->check_idle().ok());

  // Growing past the pool: the request is dropped, its tree empty, and no error.
  auto grown = small;
  grown.insert(grown.end(), big.begin(), big.begin() + 12);
  d->release(3);
  EXPECT_EQ(propose_one(*d, input(2, grown, 6, 3)).size(), 6);
  grown.insert(grown.end(), big.begin(), big.end());
  EXPECT_EQ(propose_one(*d, input(2, grown, 6, 3)).size(), 0);
  EXPECT_FALSE(d->blocks().has_request(2));

  d->release(1);
  d->release(2);
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
  // The released blocks serve new requests again.
  EXPECT_EQ(propose_one(*d, input(4, small, 6, 3)).size(), 6);
  d->release(4);
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
}

// Sampling: every node was drawn from a recorded q (the target's processed distribution at the
// node, top 64 ids, renormalised), siblings share their group's q, and a node's confidence is
// fixed before its draw: its group's top remaining share times the chance earlier siblings missed.
TEST(DraftModel, SamplingRecordsQ) {
  auto m = load("llama-tied-q4_1.gguf");
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  auto d = make(m, *backend, 64, 3);
  ASSERT_NE(d, nullptr);
  SamplingParams p;
  p.temperature = 1.3f;
  p.top_p = 0.97f;
  p.min_p = 0.001f;
  p.seed = 5;
  const auto prompt = test::some_tokens(11, V, 60);
  const DraftTree t = propose_one(*d, input(1, prompt, 20, 4, &p));
  ASSERT_TRUE(t.check(V).ok()) << t.check(V).message();
  ASSERT_GT(t.size(), 3);
  EXPECT_GT(max_depth_of(t), 1);
  for (int32_t i = 0; i < t.size(); ++i) {
    const int32_t qi = t.q_index[size_t(i)];
    ASSERT_GE(qi, 0) << "node " << i;
    const SparseDist& q = t.q[size_t(qi)];
    EXPECT_LE(q.ids.size(), 64u);
    const auto at = std::find(q.ids.begin(), q.ids.end(), t.tokens[size_t(i)]);
    ASSERT_NE(at, q.ids.end()) << "node " << i;
    for (int32_t s : children(t, t.parent[size_t(i)])) EXPECT_EQ(t.q_index[size_t(s)], qi);
  }
  // Confidences from q and the earlier siblings only (never from the node's own token).
  for (int32_t parent = -1; parent < t.size(); ++parent) {
    const std::vector<int32_t> group = children(t, parent);
    if (group.empty()) continue;
    const SparseDist& q = t.q[size_t(t.q_index[size_t(group[0])])];
    std::vector<double> left(q.probs.begin(), q.probs.end());
    double mass = 0, reach = 1;
    for (double w : left) mass += w;
    for (int32_t node : group) {
      const double top = *std::max_element(left.begin(), left.end());
      EXPECT_NEAR(t.confidence[size_t(node)], reach * top / mass, 1e-6) << "node " << node;
      reach *= 1 - top / mass;
      const size_t at =
          size_t(std::find(q.ids.begin(), q.ids.end(), t.tokens[size_t(node)]) - q.ids.begin());
      mass -= left[at];
      left[at] = 0;
    }
  }
  // Distinct parents drew from distinct groups.
  std::map<int32_t, int32_t> group_parent;
  for (int32_t i = 0; i < t.size(); ++i) {
    const auto [it, fresh] = group_parent.emplace(t.q_index[size_t(i)], t.parent[size_t(i)]);
    if (!fresh) {
      EXPECT_EQ(it->second, t.parent[size_t(i)]);
    }
  }
  // The anchor's group is the processed distribution of the target's own logits there.
  std::vector<float> logits, probs;
  greedy_continuation(*m, *backend, prompt, 1, &logits);
  processed_distribution(p, logits.data(), V, &probs);
  const SparseDist& q0 = t.q[size_t(t.q_index[size_t(children(t, -1).front())])];
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return probs[size_t(a)] > probs[size_t(b)]; });
  size_t support = 0;
  while (support < order.size() && probs[size_t(order[support])] > 0.0f) ++support;
  support = std::min<size_t>(support, 64);
  ASSERT_EQ(q0.ids.size(), support);
  double total = 0;
  for (size_t j = 0; j < support; ++j) total += probs[size_t(order[j])];
  for (size_t j = 0; j < support; ++j) {
    EXPECT_EQ(q0.ids[j], order[j]);
    EXPECT_NEAR(q0.probs[j], probs[size_t(order[j])] / total, 1e-6);
  }
  d->release(1);
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
}

// Over many seeds the first child follows q and the second follows q without the first
// (successive draws without replacement), as recorded.
TEST(DraftModel, SampledChildrenFollowQWithoutReplacement) {
  auto m = load("qwen2-q5_0.gguf");
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  auto d = make(m, *backend, 16, 2);
  ASSERT_NE(d, nullptr);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 6;
  const auto prompt = test::some_tokens(8, V, 70);
  constexpr int kDraws = 4000;
  SparseDist q;
  std::map<int32_t, int64_t> first, second;
  for (int i = 0; i < kDraws; ++i) {
    p.seed = uint64_t(i);
    const DraftTree t = propose_one(*d, input(1, prompt, 2, 1, &p));
    ASSERT_EQ(t.size(), 2);
    if (i == 0) q = t.q[0];
    ASSERT_EQ(t.q[0].ids, q.ids);
    ++first[t.tokens[0]];
    ++second[t.tokens[1]];
  }
  ASSERT_EQ(q.ids.size(), 6u);
  std::vector<int64_t> c1, c2;
  std::vector<double> e1, e2;
  for (size_t a = 0; a < q.ids.size(); ++a) {
    c1.push_back(first[q.ids[a]]);
    c2.push_back(second[q.ids[a]]);
    e1.push_back(q.probs[a]);
    double p2 = 0;  // P(second = a) = sum over first b != a of q(b) q(a) / (1 - q(b))
    for (size_t b = 0; b < q.ids.size(); ++b) {
      if (b != a) p2 += double(q.probs[b]) * q.probs[a] / (1.0 - q.probs[b]);
    }
    e2.push_back(p2);
  }
  const auto f1 = testing::fit(c1, e1), f2 = testing::fit(c2, e2);
  EXPECT_GT(f1.p_value, 1e-4) << f1.describe();
  EXPECT_GT(f2.p_value, 1e-4) << f2.describe();
  EXPECT_EQ(f1.impossible + f2.impossible, 0);
  d->release(1);
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
}

// SmolLM2 drafting for itself (30 layers, GQA, 49152 ids): four requests in one call; the
// first-child chain of each is the greedy continuation.
TEST(DraftModel, RealModelSelfDraftFollowsGreedyPath) {
  const char* dir = std::getenv("DSPARK_MODELS_DIR");
  const std::string path = (dir ? std::string(dir) : std::string(DSPARK_SOURCE_DIR) + "/models") +
                           "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    const char* require = std::getenv("DSPARK_REQUIRE_MODELS");
    if (require && std::string(require) == "1") FAIL() << path << " missing";
    GTEST_SKIP() << "SmolLM2-135M-Instruct.Q4_1.gguf not in DSPARK_MODELS_DIR";
  }
  auto file = ModelFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto loaded = Model::load(file.value(), *make_cpu_backend(1));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  std::shared_ptr<const Model> m = std::move(loaded.value());
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  auto d = make(m, *backend, 64, 2, 16);
  ASSERT_NE(d, nullptr);
  constexpr int32_t kDepth = 4, kNodes = 30;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<DraftInput> inputs;
  for (int r = 0; r < 4; ++r) prompts.push_back(test::some_tokens(12 + 9 * r, V, uint32_t(90 + r)));
  for (int r = 0; r < 4; ++r) inputs.push_back(input(r, prompts[size_t(r)], kNodes, kDepth));
  std::vector<DraftTree> trees;
  const auto start = std::chrono::steady_clock::now();
  Status st = d->propose(inputs, trees);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(st.ok()) << st.message();
  std::printf("SmolLM2 self-draft: 4 requests, %d nodes each (catch-up + %d levels): %.3f s\n",
              kNodes, kDepth - 1, seconds);
  for (int r = 0; r < 4; ++r) {
    const DraftTree& t = trees[size_t(r)];
    ASSERT_TRUE(t.check(V).ok()) << t.check(V).message();
    EXPECT_EQ(t.size(), kNodes);
    std::vector<float> logits;
    const auto want = greedy_continuation(*m, *backend, prompts[size_t(r)], kDepth, &logits);
    const auto chain = first_child_chain(t, kDepth);
    ASSERT_EQ(chain.size(), size_t(kDepth)) << "request " << r;
    for (int32_t k = 0; k < kDepth; ++k) {
      EXPECT_EQ(t.tokens[size_t(chain[size_t(k)])], want[size_t(k)])
          << "request " << r << " depth " << k + 1;
    }
    d->release(r);
  }
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
}

TEST(DraftModel, RejectsBadConfigAndInputs) {
  auto m = load("llama-q4_0.gguf");
  ASSERT_NE(m, nullptr);
  const int V = m->config().vocab_size;
  auto backend = make_cpu_backend(2);
  DraftModelConfig c;
  c.backend = backend.get();
  c.kv_blocks = 8;
  EXPECT_FALSE(make_draft_model_drafter(c).ok());
  c.model = m;
  EXPECT_TRUE(make_draft_model_drafter(c).ok());
  for (auto edit :
       {+[](DraftModelConfig& x) { x.kv_blocks = 0; },
        +[](DraftModelConfig& x) { x.block_size = 0; }, +[](DraftModelConfig& x) { x.top_k = 0; },
        +[](DraftModelConfig& x) { x.kv_blocks = 1 << 30; }}) {
    DraftModelConfig bad = c;
    edit(bad);
    auto r = make_draft_model_drafter(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("draft-model drafter"), std::string::npos);
  }

  auto d = make(m, *backend, 16, 2);
  ASSERT_NE(d, nullptr);
  const auto prompt = test::some_tokens(5, V, 80);
  std::vector<DraftInput> twice = {input(1, prompt, 4, 2), input(1, prompt, 4, 2)};
  std::vector<DraftTree> out;
  Status st = d->propose(twice, out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("request 1 appears twice"), std::string::npos) << st.message();

  // Nothing to draft: empty trees, no state kept, no error.
  auto outside = prompt;
  outside.push_back(V);
  const std::vector<int32_t> none;
  std::vector<DraftInput> idle = {input(2, outside, 4, 2), input(3, prompt, 0, 2),
                                  input(4, prompt, 4, 0), input(5, none, 4, 2)};
  st = d->propose(idle, out);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(out.size(), 4u);
  for (const DraftTree& t : out) EXPECT_EQ(t.size(), 0);
  EXPECT_TRUE(d->check_idle().ok()) << d->check_idle().message();
  EXPECT_STREQ(d->name(), "draft-model");
}

}  // namespace
}  // namespace dspark::spec
