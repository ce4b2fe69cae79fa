// BlockManager: request block tables, prefix reuse, copy-on-write and scratch slots.
#include <limits>
#include <string>

#include "dspark/kv.h"

namespace dspark::kv {

namespace {
std::string req_name(RequestId id) {
  return "kv: request " + std::to_string(id);
}
// Positions are int32 (as in SeqRef::n_past); longer sequences are refused, not truncated.
constexpr size_t kMaxPositions = size_t(std::numeric_limits<int32_t>::max());
}  // namespace

Result<BlockManager> BlockManager::create(const KvConfig& config) {
  auto pool = BlockPool::create(config.n_blocks, config.block_size);
  if (!pool.ok()) return pool.error();
  return BlockManager(config, std::move(*pool));
}

int32_t BlockManager::blocks_for(int64_t n_positions) const {
  return static_cast<int32_t>((n_positions + config_.block_size - 1) / config_.block_size);
}

Result<BlockManager::Seq*> BlockManager::find(RequestId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return Error{req_name(id) + " is unknown"};
  return &it->second;
}

Result<const BlockManager::Seq*> BlockManager::find(RequestId id) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return Error{req_name(id) + " is unknown"};
  return &it->second;
}

int64_t BlockManager::slot_of(const Seq& seq, int64_t position) const {
  const int64_t bs = config_.block_size;
  return int64_t{seq.table[static_cast<size_t>(position / bs)]} * bs + position % bs;
}

BlockManager::PrefixMatch BlockManager::match_prefix(std::span<const int32_t> prompt) const {
  PrefixMatch m;
  if (!config_.prefix_caching) return m;
  const size_t bs = static_cast<size_t>(config_.block_size);
  uint64_t parent = kRootHash;
  for (size_t i = 0; (i + 1) * bs <= prompt.size(); ++i) {
    auto tokens = prompt.subspan(i * bs, bs);
    const uint64_t h = hash_block(parent, tokens);
    auto block = pool_.lookup(h, parent, tokens);
    if (!block) break;
    m.blocks.push_back(*block);
    m.hashes.push_back(h);
    parent = h;
  }
  return m;
}

int32_t BlockManager::blocks_needed_for_prompt(std::span<const int32_t> prompt) const {
  const PrefixMatch m = match_prefix(prompt);
  const int32_t k = static_cast<int32_t>(m.blocks.size());
  const bool full_hit = k > 0 && int64_t{k} * config_.block_size == int64_t(prompt.size());
  // A fully cached prompt shares k-1 blocks and copies the last one (the copy source is held
  // while the copy target is allocated, so it counts as well).
  int32_t needed = blocks_for(int64_t(prompt.size())) - k + (full_hit ? 1 : 0);
  for (int32_t b : m.blocks) needed += pool_.ref_count(b) == 0 ? 1 : 0;
  return needed;
}

bool BlockManager::can_add_request(std::span<const int32_t> prompt) const {
  return blocks_needed_for_prompt(prompt) <= pool_.n_available();
}

Result<int32_t> BlockManager::blocks_needed(RequestId id, int32_t n_more) const {
  auto seq = find(id);
  if (!seq.ok()) return seq.error();
  if (n_more < 0) return Error{req_name(id) + ": negative token count " + std::to_string(n_more)};
  const Seq& s = **seq;
  const int64_t end = int64_t(s.tokens.size()) + s.n_scratch + n_more;
  return blocks_for(end) - static_cast<int32_t>(s.table.size());
}

Result<bool> BlockManager::can_append(RequestId id, int32_t n_more) const {
  auto needed = blocks_needed(id, n_more);
  if (!needed.ok()) return needed.error();
  return *needed <= pool_.n_available();
}

Status BlockManager::grow(Seq& seq, int64_t n_positions) {
  const size_t before = seq.table.size();
  while (seq.table.size() < static_cast<size_t>(blocks_for(n_positions))) {
    auto block = pool_.allocate();
    if (!block.ok()) {
      shrink(seq, int64_t(before) * config_.block_size);
      return block.error();
    }
    seq.table.push_back(*block);
  }
  return Status::Ok();
}

void BlockManager::shrink(Seq& seq, int64_t n_positions) {
  while (seq.table.size() > static_cast<size_t>(blocks_for(n_positions))) {
    // Blocks in a table are referenced by it, so releasing one cannot fail.
    (void)pool_.release(seq.table.back());
    seq.table.pop_back();
  }
}

Result<AddResult> BlockManager::add_request(RequestId id, std::span<const int32_t> prompt) {
  if (seqs_.count(id) != 0) return Error{req_name(id) + " already exists"};
  if (prompt.size() > kMaxPositions) {
    return Error{req_name(id) + ": prompt of " + std::to_string(prompt.size()) + " tokens"};
  }
  const int32_t needed = blocks_needed_for_prompt(prompt);
  if (needed > pool_.n_available()) {
    return Error{req_name(id) + " needs " + std::to_string(needed) + " blocks for " +
                 std::to_string(prompt.size()) + " prompt tokens, " +
                 std::to_string(pool_.n_available()) + " available"};
  }
  const PrefixMatch m = match_prefix(prompt);
  const size_t k = m.blocks.size();
  const bool full_hit = k > 0 && k * size_t(config_.block_size) == prompt.size();
  const size_t n_shared = full_hit ? k - 1 : k;

  Seq seq;
  seq.tokens.assign(prompt.begin(), prompt.end());
  AddResult result;
  // Enough blocks are available (checked above), so none of these steps can fail.
  for (size_t i = 0; i < n_shared; ++i) {
    (void)pool_.acquire(m.blocks[i]);
    seq.table.push_back(m.blocks[i]);
    seq.hashes.push_back(m.hashes[i]);
  }
  if (full_hit) {
    // The last prompt token is recomputed for its logits; it must not write a shared block.
    const int32_t src = m.blocks[k - 1];
    (void)pool_.acquire(src);  // keeps allocate() from evicting the copy source
    auto dst = pool_.allocate();
    (void)pool_.release(src);
    seq.table.push_back(*dst);
    result.copy = BlockCopy{src, *dst};
    result.n_hit_tokens = static_cast<int32_t>(prompt.size()) - 1;
  } else {
    result.n_hit_tokens = static_cast<int32_t>(n_shared) * config_.block_size;
  }
  (void)grow(seq, int64_t(prompt.size()));
  seq.n_computed = result.n_hit_tokens;
  n_hit_tokens_ += result.n_hit_tokens;
  n_prompt_tokens_ += int64_t(prompt.size());
  seqs_.emplace(id, std::move(seq));
  return result;
}

Status BlockManager::append(RequestId id, std::span<const int32_t> tokens) {
  auto found = find(id);
  if (!found.ok()) return found.error();
  Seq& seq = **found;
  if (seq.n_scratch > 0) {
    return Error{req_name(id) + " has " + std::to_string(seq.n_scratch) +
                 " scratch slots outstanding: keep_path first"};
  }
  if (tokens.size() > kMaxPositions - seq.tokens.size()) {
    return Error{req_name(id) + ": appending " + std::to_string(tokens.size()) +
                 " tokens overflows int32 positions"};
  }
  DSPARK_RETURN_IF_ERROR(grow(seq, int64_t(seq.tokens.size() + tokens.size())));
  seq.tokens.insert(seq.tokens.end(), tokens.begin(), tokens.end());
  return Status::Ok();
}

void BlockManager::publish_computed(Seq& seq) {
  if (!config_.prefix_caching) return;
  const size_t bs = static_cast<size_t>(config_.block_size);
  const size_t n_full = static_cast<size_t>(seq.n_computed) / bs;
  std::span<const int32_t> tokens(seq.tokens);
  for (size_t i = seq.hashes.size(); i < n_full; ++i) {
    const uint64_t parent = i == 0 ? kRootHash : seq.hashes[i - 1];
    auto block_tokens = tokens.subspan(i * bs, bs);
    const uint64_t h = hash_block(parent, block_tokens);
    // False when the same content is cached already (e.g. a copy-on-write copy): keep that one.
    (void)pool_.publish(seq.table[i], h, parent, block_tokens);
    seq.hashes.push_back(h);
  }
}

Status BlockManager::mark_computed(RequestId id, int32_t n_computed) {
  auto found = find(id);
  if (!found.ok()) return found.error();
  Seq& seq = **found;
  if (n_computed < seq.n_computed || n_computed > int32_t(seq.tokens.size())) {
    return Error{req_name(id) + ": n_computed " + std::to_string(n_computed) + " outside [" +
                 std::to_string(seq.n_computed) + ", " + std::to_string(seq.tokens.size()) + "]"};
  }
  seq.n_computed = n_computed;
  publish_computed(seq);
  return Status::Ok();
}

Status BlockManager::free_request(RequestId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return Error{req_name(id) + " is unknown"};
  // Tail blocks first: they join the LRU list earlier and so are evicted before their parents,
  // whose loss would make every descendant unreachable.
  const std::vector<int32_t>& table = it->second.table;
  for (auto b = table.rbegin(); b != table.rend(); ++b) (void)pool_.release(*b);
  seqs_.erase(it);
  return Status::Ok();
}

Result<std::vector<int64_t>> BlockManager::alloc_scratch(RequestId id, int32_t n) {
  auto found = find(id);
  if (!found.ok()) return found.error();
  if (n < 0) return Error{req_name(id) + ": negative scratch count " + std::to_string(n)};
  Seq& seq = **found;
  const int64_t first = int64_t(seq.tokens.size()) + seq.n_scratch;
  if (first + n > int64_t(kMaxPositions)) {
    return Error{req_name(id) + ": " + std::to_string(n) +
                 " scratch slots overflow int32 positions"};
  }
  DSPARK_RETURN_IF_ERROR(grow(seq, first + n));
  seq.n_scratch += n;
  std::vector<int64_t> slots(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) slots[size_t(i)] = slot_of(seq, first + i);
  return slots;
}

Result<std::vector<SlotCopy>> BlockManager::keep_path(RequestId id,
                                                      std::span<const int64_t> accepted_slots,
                                                      std::span<const int32_t> accepted_tokens) {
  auto found = find(id);
  if (!found.ok()) return found.error();
  Seq& seq = **found;
  if (accepted_slots.size() != accepted_tokens.size()) {
    return Error{req_name(id) + ": " + std::to_string(accepted_slots.size()) + " slots but " +
                 std::to_string(accepted_tokens.size()) + " tokens"};
  }
  const int64_t bs = config_.block_size;
  const int64_t begin = int64_t(seq.tokens.size()), end = begin + seq.n_scratch;
  const size_t first_block = static_cast<size_t>(begin / bs);
  std::vector<SlotCopy> copies;
  int64_t prev = begin - 1;
  for (size_t j = 0; j < accepted_slots.size(); ++j) {
    const int64_t slot = accepted_slots[j];
    int64_t pos = -1;
    for (size_t i = first_block; slot >= 0 && i < seq.table.size(); ++i) {
      if (seq.table[i] == slot / bs) pos = int64_t(i) * bs + slot % bs;
    }
    if (pos < begin || pos >= end) {
      return Error{req_name(id) + ": slot " + std::to_string(slot) + " is not a scratch slot"};
    }
    // Increasing positions make in-order copies safe: copy j writes position begin + j, which is
    // at most pos_j and below every later source.
    if (pos <= prev) {
      return Error{req_name(id) + ": accepted slots are not strictly increasing in position"};
    }
    prev = pos;
    const int64_t to = slot_of(seq, begin + int64_t(j));
    if (to != slot) copies.push_back(SlotCopy{slot, to});
  }
  seq.tokens.insert(seq.tokens.end(), accepted_tokens.begin(), accepted_tokens.end());
  seq.n_scratch = 0;
  shrink(seq, int64_t(seq.tokens.size()));
  return copies;
}

Result<std::vector<int32_t>> BlockManager::block_table(RequestId id) const {
  auto seq = find(id);
  if (!seq.ok()) return seq.error();
  return (*seq)->table;
}

Result<int32_t> BlockManager::n_tokens(RequestId id) const {
  auto seq = find(id);
  if (!seq.ok()) return seq.error();
  return static_cast<int32_t>((*seq)->tokens.size());
}

Result<int32_t> BlockManager::n_computed(RequestId id) const {
  auto seq = find(id);
  if (!seq.ok()) return seq.error();
  return (*seq)->n_computed;
}

Result<int32_t> BlockManager::n_scratch(RequestId id) const {
  auto seq = find(id);
  if (!seq.ok()) return seq.error();
  return (*seq)->n_scratch;
}

Result<int64_t> BlockManager::slot(RequestId id, int32_t position) const {
  auto seq = find(id);
  if (!seq.ok()) return seq.error();
  const Seq& s = **seq;
  if (position < 0 || int64_t{position} >= int64_t(s.tokens.size()) + s.n_scratch) {
    return Error{req_name(id) + ": position " + std::to_string(position) + " not allocated"};
  }
  return slot_of(s, position);
}

}  // namespace dspark::kv
