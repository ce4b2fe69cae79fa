// Shared helpers of the model gtests: locating and loading the generated tiny models, and
// running one sequence through Model::forward.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dspark/model.h"

namespace dspark::test {

// Written by scripts/make_tiny_models.py (ctest fixture model_tiny_models_setup).
inline std::string tiny_path(const std::string& name) {
  return std::string(DSPARK_BINARY_DIR) + "/tiny_models/" + name;
}

// The loaded model, or nullptr with *error set.
inline std::unique_ptr<Model> load_tiny(const std::string& name, std::string* error) {
  auto file = ModelFile::open(tiny_path(name));
  if (!file.ok()) {
    *error = file.error().message;
    return nullptr;
  }
  auto model = Model::load(file.value(), *make_cpu_backend(1));
  if (!model.ok()) {
    *error = model.error().message;
    return nullptr;
  }
  return std::move(model.value());
}

// Deterministic pseudo-random token ids in [0, vocab).
inline std::vector<int32_t> some_tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> out;
  uint32_t x = seed * 2654435761u + 12345u;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out.push_back(static_cast<int32_t>((x >> 8) % uint32_t(vocab)));
  }
  return out;
}

// One sequence in its own KV storage, fed in chunks; collects the logits of every token.
class SeqRunner {
 public:
  SeqRunner(const Model& m, Backend& backend, int block_size, std::vector<int32_t> table,
            int n_blocks)
      : m_(m),
        backend_(backend),
        bs_(block_size),
        table_(std::move(table)),
        kv_(m.config(), block_size, n_blocks) {}

  // Runs `tokens` as one forward and appends their logits ([n, vocab]) to logits().
  Status feed(const std::vector<int32_t>& tokens) {
    ForwardBatch b;
    b.seqs.push_back({table_, n_past_});
    for (size_t i = 0; i < tokens.size(); ++i) {
      b.add_token(tokens[i], n_past_ + int32_t(i), 0, bs_, true);
    }
    ForwardOutput out;
    Status st = m_.forward(b, kv_, out, backend_);
    if (!st.ok()) return st;
    logits_.insert(logits_.end(), out.logits.begin(), out.logits.end());
    n_past_ += int32_t(tokens.size());
    return Status::Ok();
  }

  // Feeds tokens in chunks of `chunk`.
  Status feed_chunked(const std::vector<int32_t>& tokens, size_t chunk) {
    for (size_t i = 0; i < tokens.size(); i += chunk) {
      std::vector<int32_t> part(tokens.begin() + i,
                                tokens.begin() + std::min(tokens.size(), i + chunk));
      Status st = feed(part);
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  const std::vector<float>& logits() const { return logits_; }
  KvStorage& kv() { return kv_; }
  int32_t n_past() const { return n_past_; }
  const std::vector<int32_t>& table() const { return table_; }

 private:
  const Model& m_;
  Backend& backend_;
  int bs_;
  std::vector<int32_t> table_;
  KvStorage kv_;
  int32_t n_past_ = 0;
  std::vector<float> logits_;
};

inline std::vector<int32_t> iota_table(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = i;
  return t;
}

// Bit-exact comparison of float arrays (memcmp, so -0/+0 and NaN payloads count too).
inline bool bit_equal(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace dspark::test
