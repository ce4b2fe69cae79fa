// Prompt-lookup drafter: matches the longest suffix (max_ngram..min_ngram tokens) of a request's
// tokens against its earlier n-grams and proposes what followed them. Each request keeps an
// incremental index (per n: hash -> newest position, plus a link to the previous position with
// the same hash), so a step costs O(new tokens * max_ngram) plus the lookup, not a rescan.
#include <algorithm>
#include <queue>
#include <unordered_map>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

// Earlier occurrences followed per lookup, newest first: enough to see competing continuations
// without walking the whole chain of a frequent token.
constexpr int32_t kMaxOccurrences = 16;
// Tokens re-compared against the stored copy on each call to notice a reused id.
constexpr size_t kConsistencyWindow = 32;

uint64_t mix(uint64_t h, int32_t token) {
  uint64_t x = h ^ (static_cast<uint64_t>(static_cast<uint32_t>(token)) + 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct RequestIndex {
  std::vector<int32_t> tokens;  // [n] copy of the committed tokens seen so far
  int32_t indexed = 0;          // n-grams ending before this position are indexed
  // Per n - min_ngram: hash of the n-gram ending at i -> newest such i.
  std::vector<std::unordered_map<uint64_t, int32_t>> head;
  // Per n - min_ngram: [n] previous position whose n-gram had the same hash, -1: none.
  std::vector<std::vector<int32_t>> prev;
};

// One node of the trie of continuations of the matched occurrences.
struct TrieNode {
  int32_t token = 0;
  int32_t parent = -1;  // trie index, -1: root
  int32_t depth = 1;
  int32_t count = 0;          // occurrences continuing through this node
  int32_t newest = 0;         // rank of the newest such occurrence (0 = most recent)
  std::vector<int32_t> kids;  // trie indices
};

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(const NgramConfig& config) {
    min_n_ = std::max(1, config.min_ngram);
    max_n_ = std::max(min_n_, config.max_ngram);
  }

  const char* name() const override { return "ngram"; }

  Status propose(std::span<const DraftInput> inputs, std::vector<DraftTree>& out) override {
    out.resize(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      out[i].clear();
      const DraftInput& in = inputs[i];
      if (in.tokens.empty()) continue;
      RequestIndex& index = update(in.id, in.tokens);
      if (in.max_nodes <= 0 || in.max_depth <= 0) continue;
      draft(index, in.max_nodes, in.max_depth, out[i]);
    }
    return Status::Ok();
  }

  void release(RequestId id) override { requests_.erase(id); }

 private:
  int32_t n_sizes() const { return max_n_ - min_n_ + 1; }

  // Hashes of the n-grams ending at end (n = min_n_..max_n_ that fit), into hashes[n - min_n_].
  void hashes_at(const std::vector<int32_t>& tokens, int32_t end,
                 std::vector<uint64_t>& hashes) const {
    hashes.assign(static_cast<size_t>(n_sizes()), 0);
    uint64_t h = 0;
    for (int32_t n = 1; n <= max_n_ && end - n + 1 >= 0; ++n) {
      h = mix(h, tokens[static_cast<size_t>(end - n + 1)]);
      if (n >= min_n_) hashes[static_cast<size_t>(n - min_n_)] = h;
    }
  }

  RequestIndex& update(RequestId id, std::span<const int32_t> tokens) {
    RequestIndex& index = requests_[id];
    const size_t old = index.tokens.size();
    // Committed tokens only grow; anything else means the id was reused: start over.
    bool consistent = old <= tokens.size();
    for (size_t k = old > kConsistencyWindow ? old - kConsistencyWindow : 0; consistent && k < old;
         ++k) {
      consistent = index.tokens[k] == tokens[k];
    }
    if (!consistent || index.head.empty()) {
      index = RequestIndex();
      index.head.resize(static_cast<size_t>(n_sizes()));
      index.prev.resize(static_cast<size_t>(n_sizes()));
    }
    index.tokens.insert(index.tokens.end(),
                        tokens.begin() + static_cast<std::ptrdiff_t>(index.tokens.size()),
                        tokens.end());
    // An n-gram is indexed once a token follows it (its continuation exists).
    const int32_t last = static_cast<int32_t>(index.tokens.size()) - 1;
    std::vector<uint64_t> hashes;
    for (; index.indexed < last; ++index.indexed) {
      const int32_t end = index.indexed;
      hashes_at(index.tokens, end, hashes);
      for (int32_t n = min_n_; n <= max_n_; ++n) {
        const auto s = static_cast<size_t>(n - min_n_);
        index.prev[s].push_back(-1);
        if (end - n + 1 < 0) continue;
        const auto [it, fresh] = index.head[s].emplace(hashes[s], end);
        if (!fresh) {
          index.prev[s].back() = it->second;
          it->second = end;
        }
      }
    }
    return index;
  }

  // Newest earlier positions whose n-gram equals the suffix of length n (hash collisions are
  // filtered by comparing tokens).
  std::vector<int32_t> occurrences(const RequestIndex& index, int32_t n, uint64_t hash) const {
    std::vector<int32_t> found;
    const auto s = static_cast<size_t>(n - min_n_);
    const auto it = index.head[s].find(hash);
    if (it == index.head[s].end()) return found;
    const auto& t = index.tokens;
    const int32_t last = static_cast<int32_t>(t.size()) - 1;
    for (int32_t at = it->second; at >= 0 && static_cast<int32_t>(found.size()) < kMaxOccurrences;
         at = index.prev[s][static_cast<size_t>(at)]) {
      if (std::equal(t.begin() + at - n + 1, t.begin() + at + 1, t.begin() + last - n + 1)) {
        found.push_back(at);
      }
    }
    return found;
  }

  void draft(const RequestIndex& index, int32_t max_nodes, int32_t max_depth,
             DraftTree& tree) const {
    const auto& t = index.tokens;
    const int32_t last = static_cast<int32_t>(t.size()) - 1;
    std::vector<uint64_t> hashes;
    hashes_at(t, last, hashes);
    for (int32_t n = std::min(max_n_, last + 1); n >= min_n_; --n) {
      const auto found = occurrences(index, n, hashes[static_cast<size_t>(n - min_n_)]);
      if (found.empty()) continue;
      emit(build_trie(t, found, max_depth), n, max_nodes, tree);
      return;
    }
  }

  // Trie of the continuations (up to max_depth tokens) of the occurrences, newest first.
  static std::vector<TrieNode> build_trie(const std::vector<int32_t>& t,
                                          const std::vector<int32_t>& found, int32_t max_depth) {
    std::vector<TrieNode> trie;
    std::vector<int32_t> roots;
    const int32_t last = static_cast<int32_t>(t.size()) - 1;
    for (int32_t rank = 0; rank < static_cast<int32_t>(found.size()); ++rank) {
      const int32_t start = found[static_cast<size_t>(rank)] + 1;
      int32_t at = -1;
      for (int32_t d = 0; d < max_depth && start + d <= last; ++d) {
        const int32_t token = t[static_cast<size_t>(start + d)];
        auto& level = at < 0 ? roots : trie[static_cast<size_t>(at)].kids;
        int32_t next = -1;
        for (const int32_t k : level) {
          if (trie[static_cast<size_t>(k)].token == token) next = k;
        }
        if (next < 0) {
          next = static_cast<int32_t>(trie.size());
          level.push_back(next);  // before push_back: level may live inside trie
          trie.push_back(TrieNode{token, at, d + 1, 0, rank, {}});
        }
        trie[static_cast<size_t>(next)].count += 1;
        at = next;
      }
    }
    return trie;
  }

  // Confidence that a node is accepted given its parent was: the share of occurrences reaching
  // the parent that continue with it, times an evidence term growing with the matched length n
  // and with the node's own count.
  static float confidence(int32_t count, int32_t parent_count, int32_t n) {
    const double share = static_cast<double>(count) / std::max(1, parent_count);
    const double evidence = 1.0 - 1.0 / (1.0 + n + count);
    return static_cast<float>(std::clamp(share * evidence, 0.0, 1.0));
  }

  // Best-first over the trie by path confidence (ties: newer occurrence, then trie order), so
  // parents precede children and the node budget keeps the most likely prefix-closed subtree.
  static void emit(const std::vector<TrieNode>& trie, int32_t n, int32_t max_nodes,
                   DraftTree& tree) {
    int32_t root_count = 0;
    for (const TrieNode& node : trie) root_count += node.depth == 1 ? node.count : 0;
    struct Item {
      double survival;
      int32_t newest;
      int32_t trie_index;
      int32_t tree_parent;
      float conf;
      bool operator<(const Item& o) const {  // priority_queue pops the largest
        if (survival != o.survival) return survival < o.survival;
        if (newest != o.newest) return newest > o.newest;
        return trie_index > o.trie_index;
      }
    };
    std::priority_queue<Item> frontier;
    for (int32_t i = 0; i < static_cast<int32_t>(trie.size()); ++i) {
      const TrieNode& node = trie[static_cast<size_t>(i)];
      if (node.depth != 1) continue;
      const float c = confidence(node.count, root_count, n);
      frontier.push(Item{c, node.newest, i, -1, c});
    }
    while (!frontier.empty() && tree.size() < max_nodes) {
      const Item item = frontier.top();
      frontier.pop();
      const TrieNode& node = trie[static_cast<size_t>(item.trie_index)];
      const int32_t added = tree.add(node.token, item.tree_parent, item.conf);
      for (const int32_t k : node.kids) {
        const TrieNode& kid = trie[static_cast<size_t>(k)];
        const float c = confidence(kid.count, node.count, n);
        frontier.push(Item{item.survival * c, kid.newest, k, added, c});
      }
    }
  }

  int32_t min_n_ = 1;
  int32_t max_n_ = 4;
  std::unordered_map<RequestId, RequestIndex> requests_;
};

}  // namespace

std::unique_ptr<Drafter> make_ngram_drafter(const NgramConfig& config) {
  return std::make_unique<NgramDrafter>(config);
}

}  // namespace dspark::spec
