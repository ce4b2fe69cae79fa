// KV storage and the ForwardBatch helper that fills a token's slot from its block table.
#include <algorithm>
#include <cstring>
#include <limits>

#include "dspark/model.h"

namespace dspark {

KvStorage::KvStorage(const ModelConfig& config, int block_size, int n_blocks)
    : block_size_(std::max(block_size, 0)),
      n_blocks_(block_size > 0 ? std::max(n_blocks, 0) : 0),
      row_elems_(int64_t{config.n_kv_heads} * config.head_dim) {
  const size_t elems = static_cast<size_t>(n_slots() * row_elems_);
  k_.assign(static_cast<size_t>(config.n_layers), std::vector<uint16_t>(elems));
  v_.assign(static_cast<size_t>(config.n_layers), std::vector<uint16_t>(elems));
}

void KvStorage::copy_slots(int64_t from_slot, int64_t to_slot, int64_t n) {
  const int64_t elems = n * row_elems_;
  for (size_t l = 0; l < k_.size(); ++l) {
    std::memcpy(k_[l].data() + to_slot * row_elems_, k_[l].data() + from_slot * row_elems_,
                size_t(elems) * sizeof(uint16_t));
    std::memcpy(v_[l].data() + to_slot * row_elems_, v_[l].data() + from_slot * row_elems_,
                size_t(elems) * sizeof(uint16_t));
  }
}

uint64_t KvStorage::bytes_per_block(const ModelConfig& config, int block_size) {
  // K and V, fp16, every layer.
  return uint64_t{2} * sizeof(uint16_t) * uint64_t(config.n_layers) * uint64_t(block_size) *
         uint64_t(config.n_kv_heads) * uint64_t(config.head_dim);
}

void ForwardBatch::add_token(int32_t token, int32_t position, int32_t s, int block_size,
                             bool want_logits) {
  int32_t slot = -1;
  if (s >= 0 && static_cast<size_t>(s) < seqs.size() && block_size > 0) {
    const SeqRef& ref = seqs[s];
    const int64_t logical = int64_t{ref.n_past} + std::count(seq.begin(), seq.end(), s);
    const int64_t block = logical / block_size;
    if (logical >= 0 && block < static_cast<int64_t>(ref.block_table.size()) &&
        ref.block_table[block] >= 0) {
      const int64_t physical = int64_t{ref.block_table[block]} * block_size + logical % block_size;
      if (physical <= std::numeric_limits<int32_t>::max()) slot = static_cast<int32_t>(physical);
    }
  }
  if (want_logits) logit_rows.push_back(static_cast<int32_t>(tokens.size()));
  tokens.push_back(token);
  positions.push_back(position);
  seq.push_back(s);
  kv_slots.push_back(slot);
}

}  // namespace dspark
