// Random attention batches for the attention tests: a batch described the way ForwardBatch and
// the DSpark blocks describe it (sequences with block tables, n_past and extra slots; tokens
// with their sequence, slot and in-batch keys), its AttentionPlan, and the oracle: each token's
// keys expanded into a flat list of slots the way the model listed them before the plan
// existed (context in logical order, extra slots, in-batch keys in batch order).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "backend_test_util.h"
#include "dspark/attention_plan.h"

namespace dspark::cpu::testing {

struct BatchSeq {
  std::vector<int32_t> block_table;  // [blocks] covering at least n_past slots
  int32_t n_past = 0;
  std::vector<int32_t> extra;  // [n_extra] physical slots
};

struct BatchSpec {
  int32_t block_size = 16;
  int64_t n_slots = 0;
  std::vector<BatchSeq> seqs;
  std::vector<int32_t> seq;    // [n_tok]
  std::vector<int32_t> slots;  // [n_tok] where each token's K/V is
  // Empty: causal. Else [n_tok]: the batch tokens (same sequence, increasing) each token sees,
  // itself included where it attends to itself.
  std::vector<std::vector<int32_t>> in_batch;

  int64_t n_tok() const { return static_cast<int64_t>(seq.size()); }
};

inline AttentionPlan make_plan(const BatchSpec& b) {
  AttentionPlan p;
  p.reset(b.block_size);
  for (const BatchSeq& s : b.seqs) p.add_sequence(s.block_table, s.n_past, s.extra);
  p.set_tokens(b.seq, b.slots);
  if (b.in_batch.empty()) return p;
  p.use_mask();
  for (int32_t t = 0; t < int32_t(b.n_tok()); ++t) {
    for (int32_t u : b.in_batch[size_t(t)]) p.allow(t, u);
  }
  return p;
}

// The oracle: token t's key list as the model expanded it per token before the plan.
inline std::vector<int32_t> expanded_keys(const BatchSpec& b, int64_t t) {
  const BatchSeq& s = b.seqs[size_t(b.seq[size_t(t)])];
  std::vector<int32_t> keys;
  for (int64_t j = 0; j < s.n_past; ++j) {
    keys.push_back(
        int32_t(s.block_table[size_t(j / b.block_size)] * b.block_size + j % b.block_size));
  }
  keys.insert(keys.end(), s.extra.begin(), s.extra.end());
  if (!b.in_batch.empty()) {
    for (int32_t u : b.in_batch[size_t(t)]) keys.push_back(b.slots[size_t(u)]);
    return keys;
  }
  for (int64_t u = 0; u <= t; ++u) {
    if (b.seq[size_t(u)] == b.seq[size_t(t)]) keys.push_back(b.slots[size_t(u)]);
  }
  return keys;
}

enum class MaskKind { Causal, Tree, Block };

// A random batch over a pool of 128 blocks of 16 slots: sequence 0 has 37 context slots (a
// partial last page) and 3 extra slots; sequence 1 shares sequence 0's block table with 600
// context slots (several 256-key chunks) and 1 extra slot; sequence 2 has no context and no
// extras; sequence 3 has 5 context slots. n_tok tokens, each of a random sequence, write to
// slots of blocks no table uses. Tree: each token sees a random subset of its sequence's earlier
// tokens and itself (as ForwardBatch::attend does), except token 1, put in sequence 2 with an
// empty row (a token with no keys at all). Block: every token sees all of its sequence's tokens.
inline BatchSpec random_batch(int64_t n_tok, MaskKind kind, uint32_t seed) {
  std::mt19937 rng(seed);
  BatchSpec b;
  b.block_size = 16;
  b.n_slots = 128 * 16;
  std::vector<int32_t> blocks(128);
  for (int32_t i = 0; i < 128; ++i) blocks[size_t(i)] = i;
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const std::vector<int32_t> shared(blocks.begin(), blocks.begin() + 40);
  b.seqs.push_back(BatchSeq{shared, 37, {}});
  b.seqs.push_back(BatchSeq{shared, 600, {}});
  b.seqs.push_back(BatchSeq{{}, 0, {}});
  b.seqs.push_back(BatchSeq{{blocks[40]}, 5, {}});
  // Free slots: blocks 41.. of the shuffled pool, in random order.
  std::vector<int32_t> free_slots;
  for (size_t i = 41; i < blocks.size(); ++i) {
    for (int32_t o = 0; o < 16; ++o) free_slots.push_back(blocks[i] * 16 + o);
  }
  std::shuffle(free_slots.begin(), free_slots.end(), rng);
  size_t next = 0;
  for (int i = 0; i < 3; ++i) b.seqs[0].extra.push_back(free_slots[next++]);
  b.seqs[1].extra.push_back(free_slots[next++]);
  for (int64_t t = 0; t < n_tok; ++t) {
    b.seq.push_back(t == 1 && kind == MaskKind::Tree ? 2 : int32_t(rng() % 4));
    b.slots.push_back(free_slots[next++]);
  }
  if (kind == MaskKind::Causal) return b;
  b.in_batch.resize(size_t(n_tok));
  for (int64_t t = 0; t < n_tok; ++t) {
    auto& keys = b.in_batch[size_t(t)];
    if (kind == MaskKind::Tree && t == 1) continue;
    const int64_t end = kind == MaskKind::Block ? n_tok : t + 1;
    for (int64_t u = 0; u < end; ++u) {
      if (b.seq[size_t(u)] != b.seq[size_t(t)]) continue;
      if (kind == MaskKind::Block || u == t || rng() % 2 == 0) keys.push_back(int32_t(u));
    }
  }
  return b;
}

}  // namespace dspark::cpu::testing
