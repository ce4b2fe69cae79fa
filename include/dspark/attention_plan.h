// The batch plan attention consumes: which KV slots each token of a forward attends to, as a
// page table (FlashInfer's layout) rather than an expanded per-token list of slots. The host
// plans it once per step (O(sequences + pages + tokens), plus a bit mask for trees and blocks);
// a backend reads it as it is (CPU) or stages the arrays to its device.
//
// Token t of sequence s = token_seq[t], the r-th (r = token_rank[t]) of s's tokens in the batch,
// attends to these keys, in this order:
//   1. s's context: logical slots [0, n_past[s]) through its pages (page_ids[page_indptr[s] ..
//      page_indptr[s + 1]), block_size slots each; the last page holds
//      n_past[s] - (pages - 1) * block_size of them): logical slot j is physical slot
//      page_ids[page_indptr[s] + j / block_size] * block_size + j % block_size;
//   2. s's extra slots (KV an earlier forward wrote outside the context, e.g. tree ancestors);
//   3. s's in-batch tokens i (slot token_slots[token_indptr[s] + i]) in batch order that the
//      mask lets it see: without a mask (causal) every i <= r, i.e. its earlier tokens and then
//      itself; with a mask, those whose bit is set in its row (a tree: ancestors and itself; a
//      non-causal block: every token of the block, itself at its own place).
// A token with no keys gets zeros.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dspark {

struct AttentionPlan {
  int32_t block_size = 0;  // KV slots per page

  // Per sequence.
  std::vector<int32_t> page_indptr{0};   // [n_seqs + 1] into page_ids
  std::vector<int32_t> page_ids;         // [page_indptr[n_seqs]] KV blocks covering the context
  std::vector<int32_t> n_past;           // [n_seqs] context tokens (slots of its pages in use)
  std::vector<int32_t> extra_indptr{0};  // [n_seqs + 1] into extra_slots
  std::vector<int32_t> extra_slots;      // [extra_indptr[n_seqs]] physical slots, in order
  std::vector<int32_t> token_indptr{0};  // [n_seqs + 1] into token_slots (n_q of s = its span)
  std::vector<int32_t> token_slots;      // [n_tok] slots of each sequence's batch tokens, in order
  // Empty: causal. Else [n_seqs + 1] bit offsets into mask_bits of each sequence's [n_q, n_q]
  // row-major bit matrix: bit (r, i) set = its r-th batch token attends to its i-th.
  std::vector<int64_t> mask_indptr;
  std::vector<uint8_t> mask_bits;  // [(mask_indptr[n_seqs] + 7) / 8] bit b = byte b/8, bit b%8

  // Per token (batch order).
  std::vector<int32_t> token_seq;   // [n_tok] its sequence
  std::vector<int32_t> token_rank;  // [n_tok] its index among its sequence's batch tokens

  int64_t n_seqs() const { return static_cast<int64_t>(n_past.size()); }
  int64_t n_tok() const { return static_cast<int64_t>(token_seq.size()); }
  bool causal() const { return mask_indptr.empty(); }
  // Keys of token t (context + extra + in-batch), in O(1) when causal, O(n_q / 8) with a mask.
  int64_t n_keys(int64_t t) const;

  // Building, in this order: reset; add_sequence for each sequence; set_tokens; then, for a
  // tree or a block, use_mask and allow for each (token, in-batch key) pair. The inputs are
  // trusted (Model::forward validates a batch before planning it).
  void reset(int32_t block_size);
  // A sequence whose context is logical slots [0, n_past) of block_table (which covers them;
  // only the blocks in use are kept), attending to extra_slots after its context.
  void add_sequence(std::span<const int32_t> block_table, int32_t n_past,
                    std::span<const int32_t> extra_slots);
  // The batch's tokens: seq[t] (a sequence added above) and the slot its K/V is written to.
  void set_tokens(std::span<const int32_t> seq /*[n_tok]*/, std::span<const int32_t> slots);
  // Replaces the causal rule by a mask that, until allow() sets bits, hides every in-batch key.
  void use_mask();
  // Token t attends to batch token u (same sequence; t itself included only when allowed).
  void allow(int32_t t, int32_t u);
};

}  // namespace dspark
