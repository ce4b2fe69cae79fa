// Private parts of Model: the scratch buffers a forward reuses.
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/backend.h"
#include "dspark/model.h"

namespace dspark {

// Activations of one forward; vectors only grow, so steady-state calls do not allocate.
struct Model::Scratch {
  LayerScratch layer;              // the residual stream and the layers' activations
  std::vector<float> rows;         // [logit_rows, d_model] final-normed rows that get logits
  AttentionPlan plan;              // the step's attention plan (every layer reads it)
  std::vector<uint8_t> slot_mark;  // [n_slots] per-slot flags used while validating

  // Grows the activations to n tokens, n_rows of them with logits (new elements are zeroed).
  void fit(const ModelConfig& c, int64_t n, size_t n_rows);
};

}  // namespace dspark
