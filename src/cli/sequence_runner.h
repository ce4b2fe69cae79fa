// Runs one sequence through a model with a linear block table: prefill in chunks, then one
// forward per step. Used by `dspark generate` and `dspark bench` until the engine serves them.
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/model.h"

namespace dspark::cli {

class SequenceRunner {
 public:
  SequenceRunner(const Model& model, Backend& backend, int64_t max_tokens, int block_size = 16);

  int64_t n_past() const { return n_past_; }
  int64_t capacity() const { return capacity_; }
  // Forgets cached tokens past n (n <= n_past): the next forward overwrites them.
  void truncate(int64_t n);

  // Appends tokens (prefill chunks of at most chunk tokens) and returns the logits of the last
  // `n_logits` tokens, [n_logits, vocab].
  Status append(const std::vector<int32_t>& tokens, int64_t n_logits,
                std::vector<float>& logits /*[n_logits, vocab]*/, int64_t chunk = 256);

 private:
  const Model& model_;
  Backend& backend_;
  int64_t capacity_;
  KvStorage kv_;
  int64_t n_past_ = 0;
  ForwardBatch batch_;
  ForwardOutput out_;
};

}  // namespace dspark::cli
