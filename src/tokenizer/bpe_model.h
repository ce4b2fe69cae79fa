// The BPE model: turns one pre-tokenized piece into token ids by repeatedly merging the adjacent
// pair of lowest merge rank (leftmost on ties), exactly as Hugging Face's BPE model does.
// Results are cached per piece.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dspark::tok {

// Hash for unordered maps keyed by std::string that also accept std::string_view lookups.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  bool byte_level = false;     // pieces are raw bytes; each byte starts as the token spelling it
  bool byte_fallback = false;  // a character missing from the vocab becomes <0xXX> byte tokens
  bool ignore_merges = false;  // a piece found whole in the vocab is that one token
  bool fuse_unk = false;       // consecutive unknown characters give a single unk token
  int32_t unk_id = -1;         // -1: unknown characters are dropped
};

struct Merge {
  int32_t left, right, merged;  // token ids
};

class BpeModel {
 public:
  // vocab: the model's tokens keyed by what a piece must equal to be that token (raw bytes for
  // byte-level models, the token text otherwise). merges: best (lowest rank) first.
  BpeModel(BpeOptions options, StringIdMap vocab, const std::vector<Merge>& merges);

  // Appends the ids of one piece to out.
  void encode_word(std::string_view word, std::vector<int32_t>* out) const;

 private:
  struct MergeInfo {
    int32_t rank, merged;
  };
  // Open-addressing table of merges keyed by the (left, right) id pair: one flat array keeps the
  // hot lookup in the merge loop cache-friendly.
  struct MergeSlot {
    uint64_t key = kEmptyKey;
    MergeInfo info{};
  };
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};
  struct Symbol {
    int32_t id, prev, next;
    uint32_t len;  // bytes of the piece covered; 0 once merged into its left neighbour
  };

  void initial_symbols(std::string_view word, std::vector<Symbol>* symbols) const;
  void push_unknown(uint32_t len, std::vector<Symbol>* symbols) const;
  void merge_all(std::vector<Symbol>* symbols) const;
  const MergeInfo* find_merge(int32_t left, int32_t right) const;

  BpeOptions options_;
  StringIdMap vocab_;
  std::array<int32_t, 256> byte_ids_{};  // byte-level: token of byte b; else <0xXX> token or -1
  std::vector<MergeSlot> merge_slots_;   // size: a power of two, at most 2/3 full
  int merge_shift_ = 64;                 // 64 - log2(slots): the hash's top bits index the table

  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace dspark::tok
