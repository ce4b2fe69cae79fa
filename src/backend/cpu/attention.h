// Internal interface between the attention driver and its per-ISA group kernels.
#pragma once

#include <cstdint>

#include "dspark/backend_cpu.h"

namespace dspark::cpu {

// Keys of one token resolved to physical KV slots, in key order (a whole list or a chunk).
struct KeyList {
  const int32_t* slots = nullptr;  // [n]
  int64_t n = 0;
};
// Writes the slots of keys [j0, j0 + n) of token t (j0 + n <= plan.n_keys(t)) to out [n]:
// its context through its pages, its sequence's extra slots, then its in-batch keys.
void resolve_keys(const AttentionPlan& plan, int64_t t, int64_t j0, int64_t n, int32_t* out);

// Attention of token t over `keys` for the query heads that share kv head `kv_head` (group =
// n_heads / n_kv_heads consecutive heads), using `scratch` [attend_scratch_floats(a, keys.n)].
// The result of a head depends only on its token's q and keys, never on the other heads or
// tokens.
using AttendGroup = void (*)(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                             float* scratch);

int64_t attend_scratch_floats(const AttentionArgs& a, int64_t n_keys);
// Keys whose K or V rows the AVX2 kernel converts at a time (scratch holds that many rows).
constexpr int64_t kAvx2KeyBlock = 8;
void attend_group_scalar(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                         float* scratch);
void attend_group_avx2(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                       float* scratch);
void attend_group_avx512(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                         float* scratch);

// Split attention for head_dim 64, 128 and 256 on AVX-512: a token's keys are cut into chunks
// of kKeyChunk keys (by position in its key order, so the cut does not depend on threads or
// batch); each (token, kv head, chunk) leaves per query head of the group the chunk's maximum
// score m, exp-sum l and unnormalized output o in `partial` [group, 2 + head_dim], and the
// chunks are then merged in order.
constexpr int64_t kKeyChunk = 256;
bool attend_chunked_avx512_supports(int64_t head_dim);
int64_t attend_chunk_scratch_floats(const AttentionArgs& a);
// `chunk` holds the chunk's keys (at most kKeyChunk).
void attend_chunk_avx512(const AttentionArgs& a, int64_t t, KeyList chunk, int64_t kv_head,
                         float* scratch, float* partial);

void store_kv_f16_avx2(const float* kv, const int32_t* slots, int64_t n_tok, int64_t row_elems,
                       uint16_t* cache);
void store_kv_f16_avx512(const float* kv, const int32_t* slots, int64_t n_tok, int64_t row_elems,
                         uint16_t* cache);

}  // namespace dspark::cpu
