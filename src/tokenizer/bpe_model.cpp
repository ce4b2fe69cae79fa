#include "bpe_model.h"

#include <bit>
#include <cstdio>
#include <queue>

#include "dspark/text.h"

namespace dspark::tok {

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Fibonacci hashing: the top bits of key * 2^64/phi.
size_t slot_of(uint64_t key, int shift) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift);
}

struct Candidate {
  int32_t rank, pos, merged;
  // Lowest rank first, then leftmost.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

BpeModel::BpeModel(BpeOptions options, StringIdMap vocab, const std::vector<Merge>& merges)
    : options_(options), vocab_(std::move(vocab)) {
  byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    std::string key;
    if (options_.byte_level) {
      key.push_back(static_cast<char>(b));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      key = buf;
    }
    const auto it = vocab_.find(key);
    if (it != vocab_.end()) byte_ids_[b] = it->second;
  }
  size_t slots = 16;
  while (slots < merges.size() + merges.size() / 2) slots *= 2;
  merge_slots_.assign(slots, MergeSlot{});
  merge_shift_ = 64 - std::countr_zero(slots);
  for (size_t i = 0; i < merges.size(); ++i) {
    const Merge& m = merges[i];
    const uint64_t key = pair_key(m.left, m.right);
    size_t at = slot_of(key, merge_shift_);
    while (merge_slots_[at].key != kEmptyKey && merge_slots_[at].key != key) {
      at = (at + 1) & (slots - 1);
    }
    // The first (best) rank wins when a pair is listed twice, as in Hugging Face.
    if (merge_slots_[at].key == kEmptyKey) {
      merge_slots_[at] = {key, {static_cast<int32_t>(i), m.merged}};
    }
  }
}

const BpeModel::MergeInfo* BpeModel::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t at = slot_of(key, merge_shift_);; at = (at + 1) & mask) {
    const MergeSlot& slot = merge_slots_[at];
    if (slot.key == key) return &slot.info;
    if (slot.key == kEmptyKey) return nullptr;
  }
}

void BpeModel::push_unknown(uint32_t len, std::vector<Symbol>* symbols) const {
  if (options_.unk_id < 0) return;  // no unk token: the character is dropped
  if (options_.fuse_unk && !symbols->empty() && symbols->back().id == options_.unk_id) {
    symbols->back().len += len;
    return;
  }
  symbols->push_back({options_.unk_id, -1, -1, len});
}

void BpeModel::initial_symbols(std::string_view word, std::vector<Symbol>* symbols) const {
  if (options_.byte_level) {
    for (char c : word) {
      const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
      if (id >= 0) {
        symbols->push_back({id, -1, -1, 1});
      } else {
        push_unknown(1, symbols);
      }
    }
    return;
  }
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t start = pos;
    (void)utf8_next(word, &pos);
    const std::string_view ch = word.substr(start, pos - start);
    const auto it = vocab_.find(ch);
    if (it != vocab_.end()) {
      symbols->push_back({it->second, -1, -1, static_cast<uint32_t>(ch.size())});
      continue;
    }
    bool all_bytes = options_.byte_fallback;
    for (char c : ch) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
    if (all_bytes) {
      for (char c : ch) symbols->push_back({byte_ids_[static_cast<uint8_t>(c)], -1, -1, 1});
    } else {
      push_unknown(static_cast<uint32_t>(ch.size()), symbols);
    }
  }
}

void BpeModel::merge_all(std::vector<Symbol>* symbols) const {
  std::vector<Symbol>& sym = *symbols;
  const auto n = static_cast<int32_t>(sym.size());
  for (int32_t i = 0; i < n; ++i) {
    sym[i].prev = i - 1;
    sym[i].next = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Candidate> queue;
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeInfo* m = find_merge(sym[i].id, sym[i + 1].id)) {
      queue.push({m->rank, i, m->merged});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    // Skip candidates made stale by an earlier merge of either symbol.
    const MergeInfo* m = find_merge(left.id, sym[right_pos].id);
    if (m == nullptr || m->merged != top.merged) continue;
    Symbol& right = sym[right_pos];
    left.id = top.merged;
    left.len += right.len;
    left.next = right.next;
    right.len = 0;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeInfo* p = find_merge(sym[left.prev].id, left.id)) {
        queue.push({p->rank, left.prev, p->merged});
      }
    }
    if (left.next >= 0) {
      if (const MergeInfo* p = find_merge(left.id, sym[left.next].id)) {
        queue.push({p->rank, top.pos, p->merged});
      }
    }
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  const auto whole = options_.ignore_merges ? vocab_.find(word) : vocab_.end();
  if (whole != vocab_.end()) {
    ids.push_back(whole->second);
  } else {
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    initial_symbols(word, &symbols);
    merge_all(&symbols);
    for (const Symbol& s : symbols) {
      if (s.len > 0) ids.push_back(s.id);
    }
  }
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace dspark::tok
