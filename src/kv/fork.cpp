// BlockManager::fork_request: a new request starting from another one's prompt KV (n > 1
// completions of one prompt), sharing its full blocks and copying the partial last one.
#include <algorithm>
#include <limits>
#include <string>

#include "dspark/kv.h"

namespace dspark::kv {

int32_t BlockManager::blocks_needed_for_fork(std::span<const int32_t> prompt,
                                             int32_t n_shared) const {
  // The shared full blocks are referenced by the source, so none of them is taken from the pool.
  return blocks_for(int64_t(prompt.size())) - std::max(n_shared, 0) / config_.block_size;
}

Result<AddResult> BlockManager::fork_request(RequestId id, RequestId source,
                                             std::span<const int32_t> prompt, int32_t n_shared) {
  const std::string name = "kv: fork of request " + std::to_string(id);
  if (seqs_.count(id) != 0) return Error{name + ": the request already exists"};
  auto found = find(source);
  if (!found.ok()) return Error{name + ": source " + found.error().message};
  const Seq& src = **found;
  if (prompt.size() > size_t(std::numeric_limits<int32_t>::max())) {
    return Error{name + ": prompt of " + std::to_string(prompt.size()) + " tokens"};
  }
  if (n_shared < 0 || size_t(n_shared) >= prompt.size()) {
    return Error{name + ": " + std::to_string(n_shared) + " shared tokens of a " +
                 std::to_string(prompt.size()) + "-token prompt (must be below it)"};
  }
  if (n_shared > src.n_computed) {
    return Error{name + ": source request " + std::to_string(source) + " has only " +
                 std::to_string(src.n_computed) + " of the " + std::to_string(n_shared) +
                 " shared tokens computed"};
  }
  if (!std::equal(prompt.begin(), prompt.begin() + n_shared, src.tokens.begin())) {
    return Error{name + ": source request " + std::to_string(source) +
                 " holds other tokens in the shared range"};
  }
  const int32_t needed = blocks_needed_for_fork(prompt, n_shared);
  if (needed > pool_.n_available()) {
    return Error{name + " needs " + std::to_string(needed) + " blocks, " +
                 std::to_string(pool_.n_available()) + " available"};
  }

  const size_t n_full = size_t(n_shared / config_.block_size);
  Seq seq;
  seq.tokens.assign(prompt.begin(), prompt.end());
  // Enough blocks are available (checked above) and shared blocks are referenced by the source,
  // so none of these steps can fail.
  for (size_t i = 0; i < n_full; ++i) {
    (void)pool_.acquire(src.table[i]);
    seq.table.push_back(src.table[i]);
  }
  // The chain hashes of shared blocks stay valid, so publishing continues from them.
  seq.hashes.assign(src.hashes.begin(), src.hashes.begin() + std::min(src.hashes.size(), n_full));
  AddResult result;
  result.n_hit_tokens = n_shared;
  if (n_shared % config_.block_size != 0) {
    // The source keeps writing its own tokens after n_shared into this block: copy it.
    auto dst = pool_.allocate();
    seq.table.push_back(*dst);
    result.copy = BlockCopy{src.table[n_full], *dst};
  }
  (void)grow(seq, int64_t(prompt.size()));
  seq.n_computed = n_shared;
  n_forked_tokens_ += n_shared;
  n_prompt_tokens_ += int64_t(prompt.size());
  seqs_.emplace(id, std::move(seq));
  return result;
}

}  // namespace dspark::kv
