// Model::forward rejects every malformed batch with a message naming the problem, before it
// touches the KV storage, and works normally afterwards.
#include <gtest/gtest.h>

#include <functional>

#include "tiny_models.h"

namespace dspark::test {
namespace {

class BatchValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    model_ = load_tiny("qwen2-q5_0.gguf", &error);
    ASSERT_NE(model_, nullptr) << error;
    kv_ = std::make_unique<KvStorage>(model_->config(), 4, 8);
  }

  // A valid batch: sequence 0 has 5 cached tokens in blocks {2, 5}, adds 2; sequence 1 adds 3.
  ForwardBatch valid() const {
    ForwardBatch b;
    b.seqs.push_back({{2, 5, 6}, 5});
    b.seqs.push_back({{1}, 0});
    b.add_token(7, 5, 0, 4, false);
    b.add_token(8, 0, 1, 4, false);
    b.add_token(9, 6, 0, 4, true);
    b.add_token(10, 1, 1, 4, false);
    b.add_token(11, 2, 1, 4, true);
    return b;
  }

  void expect_rejected(const std::function<void(ForwardBatch&)>& edit, const std::string& part) {
    ForwardBatch b = valid();
    edit(b);
    const std::vector<uint16_t> k0(kv_->k(0), kv_->k(0) + kv_->n_slots() * kv_->row_elems());
    ForwardOutput out;
    Status st = model_->forward(b, *kv_, out, *backend_);
    ASSERT_FALSE(st.ok()) << "accepted; expected an error with '" << part << "'";
    EXPECT_NE(st.message().find(part), std::string::npos)
        << "'" << st.message() << "' lacks '" << part << "'";
    EXPECT_TRUE(std::equal(k0.begin(), k0.end(), kv_->k(0))) << "KV changed by a rejected batch";
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<KvStorage> kv_;
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

TEST_F(BatchValidation, ValidBatchRuns) {
  ForwardOutput out;
  Status st = model_->forward(valid(), *kv_, out, *backend_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(out.logits.size(), size_t(2 * model_->config().vocab_size));
  EXPECT_TRUE(out.hidden.empty());
}

TEST_F(BatchValidation, EmptyBatchRuns) {
  ForwardBatch b;
  ForwardOutput out;
  out.logits.assign(3, 1.0f);
  ASSERT_TRUE(model_->forward(b, *kv_, out, *backend_).ok());
  EXPECT_TRUE(out.logits.empty());
}

TEST_F(BatchValidation, RejectsBadTokens) {
  const int V = model_->config().vocab_size;
  expect_rejected([](ForwardBatch& b) { b.positions.pop_back(); }, "same length");
  expect_rejected([&](ForwardBatch& b) { b.tokens[1] = V; },
                  "token 1: id 400 is outside the vocabulary");
  expect_rejected([](ForwardBatch& b) { b.tokens[0] = -3; }, "outside the vocabulary");
  expect_rejected([](ForwardBatch& b) { b.positions[2] = -1; }, "token 2: position -1 is negative");
  expect_rejected([](ForwardBatch& b) { b.seq[3] = 2; }, "token 3: sequence index 2");
  expect_rejected([](ForwardBatch& b) { b.kv_slots[4] = 32; }, "kv slot 32 is outside");
  expect_rejected([](ForwardBatch& b) { b.kv_slots[4] = b.kv_slots[1]; }, "also written");
  expect_rejected([](ForwardBatch& b) { b.kv_slots[1] = 9; }, "holds cached context");
}

TEST_F(BatchValidation, RejectsBadSequences) {
  expect_rejected([](ForwardBatch& b) { b.seqs[0].n_past = -1; }, "n_past -1 is negative");
  expect_rejected([](ForwardBatch& b) { b.seqs[0].n_past = 13; }, "does not cover n_past 13");
  expect_rejected([](ForwardBatch& b) { b.seqs[1].block_table = {8}; }, "block_table[0] = 8");
  expect_rejected([](ForwardBatch& b) { b.seqs[0].block_table[1] = -2; }, "block_table[1] = -2");
  // add_token leaves slot -1 when the table does not cover the token.
  expect_rejected(
      [](ForwardBatch& b) {
        b.seqs[1].block_table = {1};
        b.add_token(3, 3, 1, 4, false);
        b.add_token(3, 4, 1, 4, false);
      },
      "add_token gives -1");
}

TEST_F(BatchValidation, RejectsBadAttendLists) {
  expect_rejected([](ForwardBatch& b) { b.attend = {{}, {}}; }, "attend has 2 lists for 5");
  expect_rejected(
      [](ForwardBatch& b) {
        b.attend = {{}, {}, {2}, {}, {}};
      },
      "token 2: attends to token 2, which is not an earlier");
  expect_rejected([](ForwardBatch& b) { b.attend = {{}, {}, {1}, {}, {}}; }, "another sequence");
  expect_rejected(
      [](ForwardBatch& b) {
        b.attend = {{}, {}, {}, {1}, {3, 1}};
      },
      "strictly increasing");
  expect_rejected(
      [](ForwardBatch& b) {
        b.attend = {{}, {}, {}, {1}, {1, 1}};
      },
      "strictly increasing");
}

// Sequence 0's context is slots 8..11 and 20; the batch writes 21, 22 (sequence 0) and 4..6.
TEST_F(BatchValidation, RejectsBadExtraSlots) {
  expect_rejected(
      [](ForwardBatch& b) {
        b.seqs[0].extra_slots = {0, 32};
      },
      "sequence 0: extra_slots[1] = 32 is outside the KV storage [0, 32)");
  expect_rejected([](ForwardBatch& b) { b.seqs[1].extra_slots = {-1}; },
                  "sequence 1: extra_slots[0] = -1 is outside");
  expect_rejected([](ForwardBatch& b) { b.seqs[0].extra_slots = {21}; },
                  "extra_slots[0] = 21 is written by this batch");
  expect_rejected(
      [](ForwardBatch& b) {
        b.seqs[1].extra_slots = {3, 22};
      },
      "extra_slots[1] = 22 is written by this batch");
  expect_rejected(
      [](ForwardBatch& b) {
        b.seqs[0].extra_slots = {0, 1, 0};
      },
      "extra_slots[2] = 0 appears twice");
  expect_rejected([](ForwardBatch& b) { b.seqs[0].extra_slots = {20}; },
                  "extra_slots[0] = 20 is one of the sequence's context slots");
}

// Extra slots may repeat across sequences and may be another sequence's context (read only).
TEST_F(BatchValidation, AcceptsSharedExtraSlots) {
  ForwardBatch b = valid();
  b.seqs[0].extra_slots = {0, 3};
  b.seqs[1].extra_slots = {3, 9};
  ForwardOutput out;
  Status st = model_->forward(b, *kv_, out, *backend_);
  ASSERT_TRUE(st.ok()) << st.message();
  // Marks from the check are cleared: the same extra slots pass again.
  st = model_->forward(b, *kv_, out, *backend_);
  ASSERT_TRUE(st.ok()) << st.message();
}

TEST_F(BatchValidation, RejectsBadOutputs) {
  expect_rejected([](ForwardBatch& b) { b.logit_rows.push_back(5); }, "logit_rows[2] = 5");
  expect_rejected(
      [](ForwardBatch& b) {
        b.capture_layers = {-1, 2};
      },
      "capture_layers[1] = 2 is outside [-1, 2)");
  expect_rejected([](ForwardBatch& b) { b.capture_layers = {-2}; }, "capture_layers[0] = -2");
}

TEST_F(BatchValidation, RejectsStorageOfAnotherModel) {
  std::string error;
  auto other = load_tiny("qwen3-q4_0.gguf", &error);
  ASSERT_NE(other, nullptr) << error;
  KvStorage wrong(other->config(), 4, 8);
  ForwardOutput out;
  Status st = model_->forward(valid(), wrong, out, *backend_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("made for another model"), std::string::npos) << st.message();
}

// A rejected batch leaves no state behind: the next valid batch gives the same logits as on a
// fresh model.
TEST_F(BatchValidation, RecoversAfterRejection) {
  ForwardOutput fresh;
  {
    std::string error;
    auto m = load_tiny("qwen2-q5_0.gguf", &error);
    ASSERT_NE(m, nullptr) << error;
    KvStorage kv(m->config(), 4, 8);
    ASSERT_TRUE(m->forward(valid(), kv, fresh, *backend_).ok());
  }
  ForwardBatch bad = valid();
  bad.kv_slots[4] = bad.kv_slots[1];
  ForwardOutput out;
  ASSERT_FALSE(model_->forward(bad, *kv_, out, *backend_).ok());
  ASSERT_TRUE(model_->forward(valid(), *kv_, out, *backend_).ok());
  EXPECT_TRUE(bit_equal(out.logits.data(), fresh.logits.data(), fresh.logits.size()));
}

}  // namespace
}  // namespace dspark::test
