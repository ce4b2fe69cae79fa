// The DSpark draft layers through the backend ops: context K/V from target features (written once
// per committed token at its target slot), and the non-causal block pass over
// [anchor, MASK x (B-1)] of several requests at once (dspark-spec.md sections 2-3).
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/backend.h"
#include "dspark/model.h"
#include "dspark_checkpoint.h"

namespace dspark::spec::dspark_detail {

// Committed tokens' context: ctx = RMSNorm_hidden_norm(fc . features) (in s.x), then for every
// draft layer K = RoPE(k_norm(k_proj(ctx)), position) and V = v_proj(ctx), stored fp16 at slots.
void write_context(const Checkpoint& ck, const float* features /*[n, m * d_model]*/,
                   const int32_t* positions /*[n]*/, const int32_t* slots /*[n]*/, int64_t n,
                   KvStorage& kv, LayerScratch& s, Backend& backend);

// The block rows of every request in one pass.
struct BlockBatch {
  std::vector<int32_t> tokens;     // [rows] anchor or MASK
  std::vector<int32_t> positions;  // [rows] absolute positions
  std::vector<int32_t> slots;      // [rows] scratch slots receiving the block's K/V
  std::vector<int32_t> seq;        // [rows] the row's request (a sequence of the plan)
  // One sequence per request: its context through the target's block table, then its block's
  // rows, every row seeing all of them (non-causal: a full mask).
  AttentionPlan plan;
  int64_t rows() const { return static_cast<int64_t>(tokens.size()); }
};

// Runs the draft layers over the batch; h receives RMSNorm_norm of the last layer's output.
void run_block(const Checkpoint& ck, const BlockBatch& b, KvStorage& kv, LayerScratch& s,
               Backend& backend, std::vector<float>& h /*[rows, d_model]*/);

}  // namespace dspark::spec::dspark_detail
