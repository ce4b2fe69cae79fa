// Checks a ForwardBatch against the model and the KV storage, and plans its attention.
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/model.h"

namespace dspark::model_detail {

// Validates everything forward relies on (sizes, ids, positions, sequences, block tables,
// slots, extra slots, attend lists, logit rows, capture layers) and, when valid, plans the
// batch's attention (attention_plan.h): per sequence its pages, n_past and extra slots, per
// token its sequence and in-batch keys (causal when `attend` is empty, else a mask of each
// token's attend list and itself). So a token's keys are its sequence's context [0, n_past) in
// logical order, then its extra slots, then its attended in-batch tokens, then itself.
// slot_mark is scratch of n_slots bytes, left all zero. O(sequences + pages + tokens) beyond the
// checks (plus the attend lists' bits).
Status plan_batch(const ModelConfig& config, const ForwardBatch& batch, const KvStorage& kv,
                  AttentionPlan* plan, std::vector<uint8_t>* slot_mark /*[n_slots]*/);

}  // namespace dspark::model_detail
