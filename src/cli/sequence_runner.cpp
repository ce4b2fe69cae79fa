#include "sequence_runner.h"

#include <numeric>
#include <string>

namespace dspark::cli {

namespace {
int blocks_for(int64_t tokens, int block_size) {
  return int((tokens + block_size - 1) / block_size);
}
}  // namespace

SequenceRunner::SequenceRunner(const Model& model, Backend& backend, int64_t max_tokens,
                               int block_size)
    : model_(model),
      backend_(backend),
      capacity_(int64_t(blocks_for(max_tokens, block_size)) * block_size),
      kv_(model.config(), block_size, blocks_for(max_tokens, block_size)) {}

void SequenceRunner::truncate(int64_t n) {
  if (n < n_past_) n_past_ = n;
}

Status SequenceRunner::append(const std::vector<int32_t>& tokens, int64_t n_logits,
                              std::vector<float>& logits, int64_t chunk) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) return Error{"no tokens to run"};
  if (n_past_ + n > capacity_) {
    return Error{"sequence of " + std::to_string(n_past_ + n) +
                 " tokens exceeds the KV capacity of " + std::to_string(capacity_)};
  }
  if (n_logits > n) n_logits = n;
  const int64_t vocab = model_.config().vocab_size;
  logits.resize(size_t(n_logits * vocab));
  const int block_size = kv_.block_size();
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    batch_ = ForwardBatch{};
    SeqRef seq;
    seq.n_past = int32_t(n_past_);
    seq.block_table.resize(size_t(blocks_for(n_past_ + end - begin, block_size)));
    std::iota(seq.block_table.begin(), seq.block_table.end(), 0);
    batch_.seqs.push_back(std::move(seq));
    for (int64_t i = begin; i < end; ++i) {
      batch_.add_token(tokens[size_t(i)], int32_t(n_past_ + i - begin), 0, block_size,
                       i >= n - n_logits);
    }
    DSPARK_RETURN_IF_ERROR(model_.forward(batch_, kv_, out_, backend_));
    // Logit rows of this chunk are the tail of the wanted ones.
    const int64_t first_wanted = n - n_logits;
    const int64_t rows_here = int64_t(batch_.logit_rows.size());
    if (rows_here > 0) {
      const int64_t dst_row = std::max(begin, first_wanted) - first_wanted;
      std::copy(out_.logits.begin(), out_.logits.begin() + rows_here * vocab,
                logits.begin() + dst_row * vocab);
    }
    n_past_ += end - begin;
  }
  return Status::Ok();
}

}  // namespace dspark::cli
