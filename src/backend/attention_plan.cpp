// Building an AttentionPlan and counting a token's keys.
#include <bit>

#include "dspark/attention_plan.h"

namespace dspark {

int64_t AttentionPlan::n_keys(int64_t t) const {
  const int32_t s = token_seq[t];
  const int64_t context = int64_t{n_past[s]} + extra_indptr[s + 1] - extra_indptr[s];
  if (causal()) return context + token_rank[t] + 1;
  const int64_t n_q = token_indptr[s + 1] - token_indptr[s];
  const int64_t begin = mask_indptr[s] + token_rank[t] * n_q, end = begin + n_q;
  int64_t n = 0;
  for (int64_t b = begin; b < end;) {
    // Whole bytes where the row covers them, single bits at its ends.
    if (b % 8 == 0 && b + 8 <= end) {
      n += std::popcount(mask_bits[b / 8]);
      b += 8;
    } else {
      n += (mask_bits[b / 8] >> (b % 8)) & 1;
      ++b;
    }
  }
  return context + n;
}

void AttentionPlan::reset(int32_t size) {
  block_size = size;
  page_indptr.assign(1, 0);
  page_ids.clear();
  n_past.clear();
  extra_indptr.assign(1, 0);
  extra_slots.clear();
  token_indptr.assign(1, 0);
  token_slots.clear();
  mask_indptr.clear();
  mask_bits.clear();
  token_seq.clear();
  token_rank.clear();
}

void AttentionPlan::add_sequence(std::span<const int32_t> block_table, int32_t past,
                                 std::span<const int32_t> extra) {
  const int64_t pages = (int64_t{past} + block_size - 1) / block_size;
  page_ids.insert(page_ids.end(), block_table.begin(), block_table.begin() + pages);
  page_indptr.push_back(static_cast<int32_t>(page_ids.size()));
  n_past.push_back(past);
  extra_slots.insert(extra_slots.end(), extra.begin(), extra.end());
  extra_indptr.push_back(static_cast<int32_t>(extra_slots.size()));
}

void AttentionPlan::set_tokens(std::span<const int32_t> seq, std::span<const int32_t> slots) {
  const size_t n_tok = seq.size();
  token_seq.assign(seq.begin(), seq.end());
  token_rank.resize(n_tok);
  // Counting sort by sequence, stable, so each sequence's tokens stay in batch order.
  std::vector<int32_t>& count = token_indptr;
  count.assign(n_past.size() + 1, 0);
  for (size_t t = 0; t < n_tok; ++t) token_rank[t] = count[seq[t] + 1]++;
  for (size_t s = 0; s < n_past.size(); ++s) count[s + 1] += count[s];
  token_slots.resize(n_tok);
  for (size_t t = 0; t < n_tok; ++t) token_slots[token_indptr[seq[t]] + token_rank[t]] = slots[t];
}

void AttentionPlan::use_mask() {
  mask_indptr.assign(n_past.size() + 1, 0);
  for (size_t s = 0; s < n_past.size(); ++s) {
    const int64_t n_q = token_indptr[s + 1] - token_indptr[s];
    mask_indptr[s + 1] = mask_indptr[s] + n_q * n_q;
  }
  mask_bits.assign(static_cast<size_t>((mask_indptr.back() + 7) / 8), 0);
}

void AttentionPlan::allow(int32_t t, int32_t u) {
  const int32_t s = token_seq[t];
  const int64_t n_q = token_indptr[s + 1] - token_indptr[s];
  const int64_t bit = mask_indptr[s] + int64_t{token_rank[t]} * n_q + token_rank[u];
  mask_bits[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
}

}  // namespace dspark
