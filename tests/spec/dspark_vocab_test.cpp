// The draft vocabulary of a DSpark checkpoint (draft_vocab_ids): the heads cut to the listed
// rows give the full heads' logits at those ids, drafts (greedy and sampled) come only from the
// list, a drafter whose drafts the list covers drafts the same chain, and bad lists are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "dspark_harness.h"
#include "model/tiny_models.h"

namespace dspark::spec {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::DSparkHarness;

// A copy of the tiny checkpoint with one more tensor, draft_vocab_ids, of the given safetensors
// dtype and shape, holding values (as 4-byte integers or floats, whichever dtype says).
class VocabCheckpoint {
 public:
  VocabCheckpoint(const std::string& tag, const std::vector<int32_t>& values,
                  const std::string& dtype = "I32", std::vector<int64_t> shape = {}) {
    dir_ = fs::temp_directory_path() /
           ("dspark_vocab_" + tag + "_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path src = test::tiny_model(test::kTinyDSpark);
    fs::copy_file(src / "config.json", dir_ / "config.json");
    if (shape.empty()) shape = {int64_t(values.size())};
    std::string blob(values.size() * 4, '\0');
    for (size_t i = 0; i < values.size(); ++i) {
      const float f = float(values[i]);
      std::memcpy(
          blob.data() + 4 * i,
          dtype == "F32" ? static_cast<const void*>(&f) : static_cast<const void*>(&values[i]), 4);
    }
    test::rewrite_safetensors(
        src / "model.safetensors", dir_ / "model.safetensors",
        [&](json& header, size_t data_size) {
          header["draft_vocab_ids"] = {{"dtype", dtype},
                                       {"shape", shape},
                                       {"data_offsets", {data_size, data_size + blob.size()}}};
        },
        blob);
  }
  ~VocabCheckpoint() { fs::remove_all(dir_); }
  std::string path() const { return dir_.string(); }

 private:
  fs::path dir_;
};

std::unique_ptr<DSparkHarness> harness() {
  std::string error;
  auto h = DSparkHarness::create(test::tiny_model(test::kTinyDSpark), 4, 1, &error);
  EXPECT_NE(h, nullptr) << error;
  return h;
}

// Token ids in [0, vocab - 1): the mask id (the last) excluded, as real text never holds it.
std::vector<int32_t> some_tokens(int n, int vocab, uint32_t seed) {
  return dspark::test::some_tokens(n, vocab - 1, seed);
}

// Commits the harness's prefill features of tokens[0, n) to another drafter.
void commit_same(DSparkHarness& h, DSparkDrafter& d, const std::vector<int32_t>& tokens, int n,
                 const std::vector<int32_t>& table) {
  std::vector<float> features;
  ASSERT_TRUE(h.prefill(tokens, 0, n, table, &features).ok());
  std::vector<int64_t> slots(static_cast<size_t>(n));
  std::vector<int32_t> positions(static_cast<size_t>(n));
  std::iota(slots.begin(), slots.end(), 0);
  std::iota(positions.begin(), positions.end(), 0);
  ASSERT_TRUE(d.commit_features(slots, positions, features).ok());
}

DraftTree propose_one(DSparkDrafter& d, const DraftInput& in) {
  std::vector<DraftTree> out;
  Status st = d.propose(std::vector<DraftInput>{in}, out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out.empty() ? DraftTree{} : out[0];
}

TEST(DSparkVocab, CutHeadsMatchTheFullHeadsAndKeepTheChain) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  const std::vector<int32_t> tokens = some_tokens(11, V, 5);
  const std::vector<int32_t> table = {0, 1, 2};
  ASSERT_TRUE(h->prefill(tokens, 0, 10, table).ok());
  h->drafter().keep_logits(true);
  const DraftInput in = DSparkHarness::input(1, tokens, table, 4, 4);
  const DraftTree full = propose_one(h->drafter(), in);
  ASSERT_EQ(full.size(), 4);

  // Every third id plus the full drafter's drafts: its argmax stays inside the list.
  std::set<int32_t> listed(full.tokens.begin(), full.tokens.end());
  for (int32_t id = 0; id < V; id += 3) listed.insert(id);
  const std::vector<int32_t> ids(listed.begin(), listed.end());
  VocabCheckpoint ck("cut", ids);
  auto cut = h->make_drafter(ck.path(), 4, 1);
  ASSERT_TRUE(cut.ok()) << cut.error().message;
  EXPECT_EQ((*cut)->checkpoint().draft_ids, ids);
  ASSERT_EQ((*cut)->checkpoint().draft_vocab(), int64_t(ids.size()));
  EXPECT_EQ((*cut)->checkpoint().draft_head.rows, int64_t(ids.size()));
  EXPECT_EQ((*cut)->checkpoint().draft_w2.rows, int64_t(ids.size()));
  commit_same(*h, **cut, tokens, 10, table);
  (*cut)->keep_logits(true);
  const DraftTree small = propose_one(**cut, in);
  EXPECT_EQ(small.tokens, full.tokens);
  EXPECT_EQ(small.confidence, full.confidence);  // the confidence head reads no vocabulary

  const std::vector<float>& U = h->drafter().last_logits()[0];  // [4, V]
  const std::vector<float>& u = (*cut)->last_logits()[0];       // [4, V']
  const size_t n = ids.size();
  ASSERT_EQ(u.size(), 4 * n);
  for (size_t k = 0; k < 4; ++k) {
    for (size_t j = 0; j < n; ++j) {
      ASSERT_NEAR(u[k * n + j], U[k * size_t(V) + size_t(ids[j])], 1e-4)
          << "row " << k << " id " << ids[j];
    }
  }
}

TEST(DSparkVocab, DraftsComeOnlyFromTheList) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  std::vector<int32_t> ids;
  for (int32_t id = 1; id < V; id += 7) ids.push_back(id);
  VocabCheckpoint ck("only", ids);
  auto cut = h->make_drafter(ck.path(), 4, 3);
  ASSERT_TRUE(cut.ok()) << cut.error().message;
  const std::vector<int32_t> table = {0, 1, 2};
  const std::set<int32_t> listed(ids.begin(), ids.end());
  SamplingParams sampled;
  sampled.temperature = 1.0f;
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const std::vector<int32_t> tokens = some_tokens(9, V, seed);
    commit_same(*h, **cut, tokens, 8, table);
    const std::vector<const SamplingParams*> params = {nullptr, &sampled};
    for (const SamplingParams* p : params) {
      DraftInput in = DSparkHarness::input(1, tokens, table, 4, 4);
      in.params = p;
      const DraftTree t = propose_one(**cut, in);
      ASSERT_EQ(t.size(), 4);
      for (int32_t token : t.tokens) EXPECT_TRUE(listed.count(token)) << token;
      for (const SparseDist& q : t.q) {
        for (int32_t id : q.ids) EXPECT_TRUE(listed.count(id)) << id;
      }
      EXPECT_EQ(t.q.size(), p == nullptr ? 0u : 4u);
    }
  }
}

TEST(DSparkVocab, EveryIdMeansNoCut) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  std::vector<int32_t> ids(static_cast<size_t>(V));
  std::iota(ids.begin(), ids.end(), 0);
  VocabCheckpoint ck("all", ids);
  auto d = h->make_drafter(ck.path(), 4, 1);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE((*d)->checkpoint().draft_ids.empty());
  EXPECT_EQ((*d)->checkpoint().draft_vocab(), V);
}

TEST(DSparkVocab, RefusesBadLists) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const int V = h->target().config().vocab_size;
  struct Case {
    const char* tag;
    std::vector<int32_t> ids;
    std::string dtype;
    std::vector<int64_t> shape;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"unsorted", {3, 2, 5}, "I32", {}, "entry 1 is 2: ids must increase strictly"},
      {"repeat", {3, 3}, "I32", {}, "entry 1 is 3"},
      {"negative", {-1, 2}, "I32", {}, "entry 0 is -1"},
      {"outside", {1, V}, "I32", {}, "entry 1 is " + std::to_string(V)},
      {"float", {1, 2}, "F32", {}, "'draft_vocab_ids' must have type I32"},
      {"matrix", {1, 2, 3, 4}, "I32", {2, 2}, "has shape [2, 2]"},
  };
  for (const Case& c : cases) {
    VocabCheckpoint ck(c.tag, c.ids, c.dtype, c.shape);
    auto d = h->make_drafter(ck.path(), 4, 1);
    ASSERT_FALSE(d.ok()) << c.tag;
    EXPECT_NE(d.error().message.find(c.expect), std::string::npos)
        << c.tag << ": " << d.error().message;
  }
}

}  // namespace
}  // namespace dspark::spec
