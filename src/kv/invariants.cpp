// BlockManager::check_invariants: cross-checks request tables against the pool.
#include <string>
#include <unordered_set>

#include "dspark/kv.h"

namespace dspark::kv {

Status BlockManager::check_invariants() const {
  DSPARK_RETURN_IF_ERROR(pool_.check_invariants());
  const int32_t bs = config_.block_size;
  std::vector<int32_t> holders(static_cast<size_t>(pool_.n_blocks()), 0);  // [n_blocks]
  for (const auto& [id, seq] : seqs_) {
    const std::string name = "kv: request " + std::to_string(id);
    const int64_t n_positions = int64_t(seq.tokens.size()) + seq.n_scratch;
    if (int64_t(seq.table.size()) != blocks_for(n_positions)) {
      return Error{name + " holds " + std::to_string(seq.table.size()) + " blocks for " +
                   std::to_string(n_positions) + " positions"};
    }
    if (seq.n_computed < 0 || seq.n_computed > int32_t(seq.tokens.size())) {
      return Error{name + " has n_computed " + std::to_string(seq.n_computed) + " beyond " +
                   std::to_string(seq.tokens.size()) + " tokens"};
    }
    if (seq.hashes.size() > size_t(seq.n_computed / bs)) {
      return Error{name + " hashed " + std::to_string(seq.hashes.size()) + " blocks but only " +
                   std::to_string(seq.n_computed / bs) + " are computed"};
    }
    std::unordered_set<int32_t> seen;
    for (size_t i = 0; i < seq.table.size(); ++i) {
      const int32_t b = seq.table[i];
      if (b < 0 || b >= pool_.n_blocks()) {
        return Error{name + " holds out-of-range block " + std::to_string(b)};
      }
      if (!seen.insert(b).second) {
        return Error{name + " holds block " + std::to_string(b) + " twice"};
      }
      ++holders[size_t(b)];
      // Only full blocks with written KV may be shared or cached: anything else is still written.
      const bool shareable = int64_t(i + 1) * bs <= seq.n_computed;
      if (!shareable && (pool_.ref_count(b) > 1 || pool_.is_cached(b))) {
        return Error{name + " block " + std::to_string(b) + " (index " + std::to_string(i) +
                     ") is shared or cached but not a full computed block"};
      }
    }
  }
  for (int32_t b = 0; b < pool_.n_blocks(); ++b) {
    if (holders[size_t(b)] != pool_.ref_count(b)) {
      return Error{"kv: block " + std::to_string(b) + " has refcount " +
                   std::to_string(pool_.ref_count(b)) + " but " +
                   std::to_string(holders[size_t(b)]) + " tables hold it"};
    }
  }
  if (seqs_.empty() && pool_.n_available() != pool_.n_blocks()) {
    return Error{"kv: no request alive but only " + std::to_string(pool_.n_available()) + " of " +
                 std::to_string(pool_.n_blocks()) + " blocks are free or evictable"};
  }
  return Status::Ok();
}

}  // namespace dspark::kv
