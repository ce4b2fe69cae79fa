// The page walk: a token's keys, as its AttentionPlan describes them, resolved to physical KV
// slots a chunk at a time for the attention kernels.
#include <algorithm>

#include "attention.h"

namespace dspark::cpu {
namespace {

// Slots of context keys [j, end) of sequence s (end <= n_past), page by page.
int32_t* context_slots(const AttentionPlan& p, int32_t s, int64_t j, int64_t end, int32_t* out) {
  const int64_t bs = p.block_size;
  const int32_t* pages = p.page_ids.data() + p.page_indptr[s];
  while (j < end) {
    const int64_t page = j / bs, first = page * bs;
    const int64_t stop = std::min(end, first + bs);
    const int64_t base = int64_t{pages[page]} * bs - first;  // + j = the slot of key j
    for (; j < stop; ++j) *out++ = static_cast<int32_t>(base + j);
  }
  return out;
}

// Slots of the in-batch keys [skip, skip + n) of token t, in its sequence's batch order.
void batch_slots(const AttentionPlan& p, int64_t t, int64_t skip, int64_t n, int32_t* out) {
  const int32_t s = p.token_seq[t];
  const int32_t* slots = p.token_slots.data() + p.token_indptr[s];
  if (p.causal()) {  // tokens 0..rank of the sequence
    std::copy(slots + skip, slots + skip + n, out);
    return;
  }
  const int64_t n_q = p.token_indptr[s + 1] - p.token_indptr[s];
  const int64_t row = p.mask_indptr[s] + int64_t{p.token_rank[t]} * n_q;
  for (int64_t i = 0; i < n_q && n > 0; ++i) {
    const int64_t bit = row + i;
    if (!((p.mask_bits[bit / 8] >> (bit % 8)) & 1)) continue;
    if (skip > 0) {
      --skip;
      continue;
    }
    *out++ = slots[i];
    --n;
  }
}

}  // namespace

void resolve_keys(const AttentionPlan& p, int64_t t, int64_t j0, int64_t n, int32_t* out) {
  const int32_t s = p.token_seq[t];
  const int64_t n_past = p.n_past[s];
  const int64_t e0 = p.extra_indptr[s], n_extra = p.extra_indptr[s + 1] - e0;
  int64_t j = j0;
  const int64_t end = j0 + n;
  if (j < n_past) {
    const int64_t stop = std::min(end, n_past);
    out = context_slots(p, s, j, stop, out);
    j = stop;
  }
  for (; j < end && j < n_past + n_extra; ++j) *out++ = p.extra_slots[e0 + (j - n_past)];
  if (j < end) batch_slots(p, t, j - n_past - n_extra, end - j, out);
}

}  // namespace dspark::cpu
