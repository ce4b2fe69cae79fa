// BlockPool: reference counts, free list, prefix cache and LRU eviction of cached blocks.
#include <algorithm>
#include <limits>
#include <string>

#include "dspark/kv.h"

namespace dspark::kv {

Result<int32_t> blocks_for_budget(uint64_t budget_bytes, uint64_t bytes_per_block) {
  if (bytes_per_block == 0) return Error{"kv: bytes_per_block is 0"};
  const uint64_t n = budget_bytes / bytes_per_block;
  if (n == 0) {
    return Error{"kv: budget of " + std::to_string(budget_bytes) + " bytes holds no block of " +
                 std::to_string(bytes_per_block) + " bytes"};
  }
  if (n > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    return Error{"kv: budget gives " + std::to_string(n) + " blocks, more than int32 can index"};
  }
  return static_cast<int32_t>(n);
}

namespace {
// splitmix64 finalizer: a bijection with full avalanche, so chaining it keeps every bit mixed.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}
}  // namespace

uint64_t hash_block(uint64_t parent_hash, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent_hash ^ (0x632be59bd9b4e019ull + tokens.size()));
  for (int32_t t : tokens)
    h = mix(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9e37ull));
  return h;
}

Result<BlockPool> BlockPool::create(int32_t n_blocks, int32_t block_size) {
  if (block_size < 1) return Error{"kv: block_size " + std::to_string(block_size) + " < 1"};
  if (n_blocks < 1) return Error{"kv: n_blocks " + std::to_string(n_blocks) + " < 1"};
  BlockPool pool;
  pool.block_size_ = block_size;
  pool.blocks_.resize(static_cast<size_t>(n_blocks));
  pool.free_.reserve(static_cast<size_t>(n_blocks));
  // Stack popped from the back: low ids are handed out first, which keeps tests readable.
  for (int32_t b = n_blocks - 1; b >= 0; --b) pool.free_.push_back(b);
  return pool;
}

int32_t BlockPool::ref_count(int32_t block) const {
  if (block < 0 || block >= n_blocks()) return 0;
  return blocks_[static_cast<size_t>(block)].ref;
}

bool BlockPool::is_cached(int32_t block) const {
  return block >= 0 && block < n_blocks() && blocks_[static_cast<size_t>(block)].cached;
}

void BlockPool::uncache(int32_t block) {
  Block& b = blocks_[static_cast<size_t>(block)];
  cache_.erase(b.hash);
  b.cached = false;
  b.tokens.clear();
}

Result<int32_t> BlockPool::allocate() {
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    id = lru_.front();
    lru_.pop_front();
    uncache(id);
  } else {
    return Error{"kv: out of blocks (all " + std::to_string(n_blocks()) + " referenced)"};
  }
  Block& b = blocks_[static_cast<size_t>(id)];
  b.free = false;
  b.ref = 1;
  return id;
}

Status BlockPool::acquire(int32_t block) {
  if (block < 0 || block >= n_blocks()) {
    return Error{"kv: acquire of block " + std::to_string(block) + " out of range"};
  }
  Block& b = blocks_[static_cast<size_t>(block)];
  if (b.free) return Error{"kv: acquire of free block " + std::to_string(block)};
  if (b.ref == 0) lru_.erase(b.lru);  // a cached block comes back into use
  ++b.ref;
  return Status::Ok();
}

Status BlockPool::release(int32_t block) {
  if (block < 0 || block >= n_blocks()) {
    return Error{"kv: release of block " + std::to_string(block) + " out of range"};
  }
  Block& b = blocks_[static_cast<size_t>(block)];
  if (b.ref == 0) return Error{"kv: release of unreferenced block " + std::to_string(block)};
  if (--b.ref > 0) return Status::Ok();
  if (b.cached) {
    b.lru = lru_.insert(lru_.end(), block);
  } else {
    b.free = true;
    free_.push_back(block);
  }
  return Status::Ok();
}

std::optional<int32_t> BlockPool::lookup(uint64_t hash, uint64_t parent_hash,
                                         std::span<const int32_t> tokens) const {
  auto it = cache_.find(hash);
  if (it == cache_.end()) return std::nullopt;
  const Block& b = blocks_[static_cast<size_t>(it->second)];
  if (b.parent_hash != parent_hash ||
      !std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(), tokens.end())) {
    return std::nullopt;
  }
  return it->second;
}

bool BlockPool::publish(int32_t block, uint64_t hash, uint64_t parent_hash,
                        std::span<const int32_t> tokens) {
  if (block < 0 || block >= n_blocks()) return false;
  Block& b = blocks_[static_cast<size_t>(block)];
  if (b.ref == 0 || b.cached || cache_.count(hash) != 0) return false;
  cache_.emplace(hash, block);
  b.cached = true;
  b.hash = hash;
  b.parent_hash = parent_hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  return true;
}

std::vector<int32_t> BlockPool::eviction_order() const {
  return {lru_.begin(), lru_.end()};
}

Status BlockPool::check_invariants() const {
  std::vector<int> on_free(blocks_.size(), 0), on_lru(blocks_.size(), 0);
  for (int32_t id : free_) {
    if (id < 0 || id >= n_blocks())
      return Error{"kv: free list holds bad id " + std::to_string(id)};
    ++on_free[static_cast<size_t>(id)];
  }
  for (int32_t id : lru_) {
    if (id < 0 || id >= n_blocks()) return Error{"kv: LRU list holds bad id " + std::to_string(id)};
    ++on_lru[static_cast<size_t>(id)];
  }
  size_t n_cached = 0;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    const std::string name = "kv: block " + std::to_string(i);
    if (b.ref < 0) return Error{name + " has negative refcount " + std::to_string(b.ref)};
    const bool is_free = b.free && b.ref == 0 && !b.cached && on_free[i] == 1 && on_lru[i] == 0;
    const bool is_owned = !b.free && b.ref > 0 && on_free[i] == 0 && on_lru[i] == 0;
    const bool is_evictable =
        !b.free && b.ref == 0 && b.cached && on_free[i] == 0 && on_lru[i] == 1;
    if (int(is_free) + int(is_owned) + int(is_evictable) != 1) {
      return Error{name + " is not exactly one of free/owned/evictable (ref " +
                   std::to_string(b.ref) + ", free flag " + std::to_string(b.free) + ", cached " +
                   std::to_string(b.cached) + ", on free list " + std::to_string(on_free[i]) +
                   ", on LRU " + std::to_string(on_lru[i]) + ")"};
    }
    if (is_evictable && *b.lru != static_cast<int32_t>(i)) {
      return Error{name + " has a stale LRU position"};
    }
    if (b.cached) {
      ++n_cached;
      auto it = cache_.find(b.hash);
      if (it == cache_.end() || it->second != static_cast<int32_t>(i)) {
        return Error{name + " is marked cached but the hash table does not map to it"};
      }
      if (b.tokens.size() != static_cast<size_t>(block_size_)) {
        return Error{name + " is cached with " + std::to_string(b.tokens.size()) + " tokens"};
      }
    }
  }
  if (n_cached != cache_.size()) {
    return Error{"kv: hash table has " + std::to_string(cache_.size()) + " entries but " +
                 std::to_string(n_cached) + " blocks are cached"};
  }
  return Status::Ok();
}

}  // namespace dspark::kv
