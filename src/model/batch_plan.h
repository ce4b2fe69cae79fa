// Checks a ForwardBatch against the model and the KV storage, and lists each token's key slots.
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/model.h"

namespace dspark::model_detail {

// Validates everything forward relies on (sizes, ids, positions, sequences, block tables,
// slots, extra slots, attend lists, logit rows, capture layers) and, when valid, fills each
// token's key slots: its sequence's context [0, n_past) through the block table in logical order,
// then its sequence's extra slots, then its attended in-batch tokens (all earlier tokens of its
// sequence when `attend` is empty), then itself. slot_mark is scratch of n_slots bytes, left all
// zero.
Status plan_batch(const ModelConfig& config, const ForwardBatch& batch, const KvStorage& kv,
                  std::vector<int64_t>* key_offsets /*[n_tok + 1]*/,
                  std::vector<int32_t>* key_slots /*[total keys]*/,
                  std::vector<uint8_t>* slot_mark /*[n_slots]*/);

}  // namespace dspark::model_detail
