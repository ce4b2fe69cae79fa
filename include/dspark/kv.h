// Paged KV block manager: a pool of fixed-size blocks with reference counts, per-request block
// tables, prefix caching over hash-chained full blocks (LRU eviction of unreferenced cached
// blocks), copy-on-write and scratch slots for speculative tokens. Pure bookkeeping: it never
// touches KV memory; wherever rows must move it returns the copies the engine performs in
// KvStorage, whose slot of a block-table entry is block_id * block_size + offset.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dspark/status.h"

namespace dspark::kv {

// Blocks that fit in budget_bytes (floor); errors when bytes_per_block is 0, no block fits or the
// count overflows int32.
Result<int32_t> blocks_for_budget(uint64_t budget_bytes, uint64_t bytes_per_block);

// Hash of a full block chained with its parent's hash (use kRootHash for the first block).
inline constexpr uint64_t kRootHash = 0x9e3779b97f4a7c15ull;
uint64_t hash_block(uint64_t parent_hash, std::span<const int32_t> tokens);  // tokens: [block_size]

// Blocks with reference counts, a free list and the prefix cache (hash -> block) whose blocks stay
// there after their last reference is released, evictable least recently released first.
class BlockPool {
 public:
  static Result<BlockPool> create(int32_t n_blocks, int32_t block_size);

  int32_t n_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t n_evictable() const { return static_cast<int32_t>(lru_.size()); }
  int32_t n_available() const { return n_free() + n_evictable(); }  // what allocate() can hand out
  int32_t ref_count(int32_t block) const;                           // 0 for an out-of-range id
  bool is_cached(int32_t block) const;                              // published in the prefix cache

  // A block with refcount 1: from the free list, else the least recently released cached block
  // (removed from the cache). Errors when neither exists.
  Result<int32_t> allocate();
  // +1 reference; revives an evictable cached block. Errors on a free or out-of-range block.
  Status acquire(int32_t block);
  // -1 reference; at 0 a cached block becomes evictable (most recent), any other block free.
  Status release(int32_t block);

  // The cached block holding exactly these tokens after parent_hash, if any (token ids and parent
  // hash are compared, so a 64-bit collision is a miss, never a wrong hit).
  std::optional<int32_t> lookup(uint64_t hash, uint64_t parent_hash,
                                std::span<const int32_t> tokens) const;  // tokens: [block_size]
  // Publishes a referenced full block under hash; false (no change) when the hash is already
  // taken (same content cached in another block, or a collision) or the block is already cached.
  bool publish(int32_t block, uint64_t hash, uint64_t parent_hash,
               std::span<const int32_t> tokens);  // tokens: [block_size]
  // Evictable blocks, next to be evicted first.
  std::vector<int32_t> eviction_order() const;  // [n_evictable]

  // Every block is exactly one of free / referenced / cached-evictable, and the lists agree.
  Status check_invariants() const;

 private:
  struct Block {
    int32_t ref = 0;
    bool free = true;
    bool cached = false;
    uint64_t hash = 0, parent_hash = 0;
    std::vector<int32_t> tokens;       // [block_size] when cached, else empty
    std::list<int32_t>::iterator lru;  // valid while cached with ref == 0
  };
  BlockPool() = default;
  void uncache(int32_t block);

  int32_t block_size_ = 0;
  std::vector<Block> blocks_;                    // [n_blocks]
  std::vector<int32_t> free_;                    // [n_free] stack of free block ids
  std::list<int32_t> lru_;                       // [n_evictable] front is evicted first
  std::unordered_map<uint64_t, int32_t> cache_;  // hash -> block
};

struct KvConfig {
  int32_t block_size = 16;
  int32_t n_blocks = 0;
  bool prefix_caching = true;
};

// A whole-block copy for copy-on-write: the engine copies every row of from_block to to_block.
struct BlockCopy {
  int32_t from_block = 0, to_block = 0;
};

// One KV row move (all layers, K and V) in KvStorage.
struct SlotCopy {
  int64_t from_slot = 0, to_slot = 0;
};

struct AddResult {
  int32_t n_hit_tokens = 0;       // prompt tokens whose KV is already present: compute the rest
  std::optional<BlockCopy> copy;  // copy-on-write to perform before computing, if any
};

using RequestId = int64_t;

// Block tables of live requests over one BlockPool. A request's logical position p lives at slot
// table[p / block_size] * block_size + p % block_size. Positions [0, n_tokens) are committed,
// [n_tokens, n_tokens + n_scratch) are scratch (speculative) slots. Full blocks become shareable
// once mark_computed says their KV is written; a partially filled block is never shared.
class BlockManager {
 public:
  static Result<BlockManager> create(const KvConfig& config);

  const KvConfig& config() const { return config_; }
  const BlockPool& pool() const { return pool_; }
  int32_t n_available_blocks() const { return pool_.n_available(); }
  int32_t n_requests() const { return static_cast<int32_t>(seqs_.size()); }
  bool has_request(RequestId id) const { return seqs_.count(id) != 0; }

  // Capacity checks for a scheduler: available blocks that add_request(prompt) would consume
  // (new blocks plus revived evictable cached hits), and whether they are there.
  int32_t blocks_needed_for_prompt(std::span<const int32_t> prompt) const;  // prompt: [n_prompt]
  bool can_add_request(std::span<const int32_t> prompt) const;              // prompt: [n_prompt]
  // New blocks an existing request needs for n_more tokens after its committed + scratch ones.
  Result<int32_t> blocks_needed(RequestId id, int32_t n_more) const;
  Result<bool> can_append(RequestId id, int32_t n_more) const;

  // Creates a request holding the prompt: reuses cached full prompt blocks (never the last token:
  // its logits are needed, so a fully cached prompt recomputes it into a copy-on-write block).
  // Errors (no change) on a duplicate id or too few blocks.
  Result<AddResult> add_request(RequestId id, std::span<const int32_t> prompt);  // [n_prompt]
  // Blocks fork_request(.., prompt, n_shared) takes from the pool: all but the shared full ones.
  int32_t blocks_needed_for_fork(std::span<const int32_t> prompt,  // [n_prompt]
                                 int32_t n_shared) const;
  // Creates a request holding the prompt whose first n_shared positions take their KV from the
  // live request `source`, which holds the same tokens there with their KV computed: the full
  // blocks among them are shared (one more reference each), a partially filled last one is
  // copied into a new block (AddResult::copy: the whole block is copied, its rows from n_shared
  // on are rewritten as the new request computes them). 0 <= n_shared < n_prompt, so at least
  // the last token is computed for its logits. Errors (no change) on a duplicate id, an unknown
  // source, other tokens, KV not yet computed there, or too few blocks.
  Result<AddResult> fork_request(RequestId id, RequestId source,
                                 std::span<const int32_t> prompt,  // [n_prompt]
                                 int32_t n_shared);
  // Commits more tokens, allocating blocks as needed; errors (no change) while scratch slots are
  // outstanding or when blocks run out.
  Status append(RequestId id, std::span<const int32_t> tokens);  // tokens: [n_new]
  // Declares KV of positions [0, n_computed) written; full blocks in that range join the prefix
  // cache. n_computed must not exceed n_tokens and never decreases.
  Status mark_computed(RequestId id, int32_t n_computed);
  // Releases every block of a finished or aborted request; computed full blocks stay cached.
  Status free_request(RequestId id);

  // n scratch slots after the committed tokens (and earlier scratch); returns their slots.
  Result<std::vector<int64_t>> alloc_scratch(RequestId id, int32_t n);  // -> [n]
  // Commits the accepted scratch tokens (slots strictly increasing in position, each one of this
  // request's scratch slots) as the next positions, frees the remaining scratch, and returns the
  // row copies to perform in order (accepted i moves to position n_tokens + i; moves onto itself
  // are omitted). Errors without change on bad input.
  Result<std::vector<SlotCopy>> keep_path(
      RequestId id, std::span<const int64_t> accepted_slots,  // [n_accepted]
      std::span<const int32_t> accepted_tokens);              // [n_accepted]

  Result<std::vector<int32_t>> block_table(RequestId id) const;  // -> [n_blocks_used]
  Result<int32_t> n_tokens(RequestId id) const;                  // committed tokens
  Result<int32_t> n_computed(RequestId id) const;
  Result<int32_t> n_scratch(RequestId id) const;
  Result<int64_t> slot(RequestId id, int32_t position) const;  // committed or scratch position
  // Prompt tokens served from the prefix cache since creation, over all add_request calls.
  int64_t n_prefix_hit_tokens() const { return n_hit_tokens_; }
  int64_t n_prompt_tokens() const { return n_prompt_tokens_; }
  // Prompt tokens whose KV fork_request shared or copied from another request.
  int64_t n_forked_tokens() const { return n_forked_tokens_; }

  // Pool invariants, plus: refcounts equal the number of tables holding each block, table sizes
  // match token counts, no block twice in one table, and with no request alive every block is
  // free or cached with refcount 0. The error names the first violation.
  Status check_invariants() const;

 private:
  struct Seq {
    std::vector<int32_t> tokens;   // [n_tokens] committed token ids
    std::vector<int32_t> table;    // [ceil((n_tokens + n_scratch) / block_size)] block ids
    std::vector<uint64_t> hashes;  // [n_hashed] chain hash of each leading full computed block
    int32_t n_scratch = 0;
    int32_t n_computed = 0;
  };
  struct PrefixMatch {
    std::vector<int32_t> blocks;   // [n_matched] cached blocks matching the prompt's first blocks
    std::vector<uint64_t> hashes;  // [n_matched]
  };
  explicit BlockManager(const KvConfig& config, BlockPool pool)
      : config_(config), pool_(std::move(pool)) {}
  PrefixMatch match_prefix(std::span<const int32_t> prompt) const;
  Result<Seq*> find(RequestId id);
  Result<const Seq*> find(RequestId id) const;
  int32_t blocks_for(int64_t n_positions) const;
  Status grow(Seq& seq, int64_t n_positions);  // allocates blocks up to n_positions
  void shrink(Seq& seq, int64_t n_positions);  // releases blocks beyond n_positions
  void publish_computed(Seq& seq);
  int64_t slot_of(const Seq& seq, int64_t position) const;

  KvConfig config_;
  BlockPool pool_;
  std::map<RequestId, Seq> seqs_;
  int64_t n_hit_tokens_ = 0, n_prompt_tokens_ = 0, n_forked_tokens_ = 0;
};

}  // namespace dspark::kv
