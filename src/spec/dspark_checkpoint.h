// A DSpark drafter checkpoint (dspark-spec.md section 1): the Hugging Face folder's config.json
// read and checked against the target, and every tensor bound with its shape checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dspark/backend.h"
#include "dspark/loader.h"
#include "dspark/model.h"
#include "dspark/status.h"

namespace dspark::spec::dspark_detail {

// One Qwen3 draft layer: the model's own layer weights (no biases; q/k RMS norm per head,
// input_layernorm as attn_norm, post_attention_layernorm as ffn_norm), run by forward_layer.
using DraftLayer = LayerWeights;

struct Checkpoint {
  std::shared_ptr<ModelFile> file;  // owns the mapped weights the bound views point into
  // Geometry of the draft layers: the target's, with the checkpoint's layer count and d_ff
  // (what KvStorage and the backend ops need).
  ModelConfig layers_config;
  int32_t block_size = 0;                 // B: draft positions per round
  int32_t mask_token = 0;                 // id of the MASK embedding row
  std::vector<int32_t> target_layer_ids;  // [m] capture ids, increasing
  int32_t markov_rank = 0;                // r; 0: no sequential head
  bool confidence_head = false;
  // [B] T_k of c_k = sigmoid(z_k / T_k) (sequential temperature scaling); empty: all 1.
  std::vector<float> confidence_temperatures;
  // The checkpoint's embed_tokens / lm_head, or the target's own token embedding / output head
  // when the checkpoint has none (possibly quantized; they point into the target's weights).
  WeightView embed;                // [vocab, d_model]
  WeightView lm_head;              // [vocab, d_model]
  bool own_embed = false;          // embed is the checkpoint's
  bool own_lm_head = false;        // lm_head is the checkpoint's
  WeightView fc;                   // [d_model, m * d_model]
  std::vector<float> hidden_norm;  // [d_model] applied to fc's output (the context)
  std::vector<float> norm;         // [d_model] applied after the last draft layer
  std::vector<DraftLayer> layers;  // [n_draft_layers]
  WeightView markov_w1;            // [vocab, r] embedding table of the previous token
  WeightView markov_w2;            // [vocab, r] r -> vocab projection
  // [d_model + r] (or [d_model] without the Markov feature): weights over [h ; W1[prev]].
  std::vector<float> confidence_w;
  float confidence_b = 0.0f;
  // The ids drafts come from ([V'] increasing: the draft_vocab_ids tensor that training with
  // --loss-vocab writes; empty: every id) and the two vocabulary-sized heads cut to those rows,
  // so a round multiplies V' rows, not vocab. Without ids they are lm_head and markov_w2.
  std::vector<int32_t> draft_ids;
  WeightView draft_head;  // [V', d_model]
  WeightView draft_w2;    // [V', r]

  int64_t d_model() const { return layers_config.d_model; }
  int64_t vocab() const { return layers_config.vocab_size; }
  int64_t n_features() const { return static_cast<int64_t>(target_layer_ids.size()); }
  int64_t draft_vocab() const {  // V'
    return draft_ids.empty() ? vocab() : static_cast<int64_t>(draft_ids.size());
  }
  int32_t draft_token(int64_t column) const {  // the id of a column of the cut heads
    return draft_ids.empty() ? static_cast<int32_t>(column) : draft_ids[size_t(column)];
  }
};

// Reads the optional draft_vocab_ids tensor (I32 [V'], strictly increasing ids in [0, vocab))
// and sets draft_ids, draft_head and draft_w2 (row copies of lm_head and markov_w2 the backend
// gathers and places, owned by the views). Called once lm_head and markov_w2 are bound.
Status cut_draft_vocab(const ModelFile& file, Backend& backend, Checkpoint* ck);

// Re-encodes fc and every draft layer's projections as Q8_0 (rows of 32-value blocks, one f16
// scale each) through backend.quantize_weight, placed and owned by the views: the CPU integer
// kernels run them several times faster than the BF16 float path, for drafts within
// quantization noise of the float drafter. Matrices whose width is not a multiple of 32 stay as
// they are.
Status quantize_layers(Backend& backend, Checkpoint* ck);

// Opens the folder at path and checks it against the target: architecture Qwen3DSparkModel,
// d_model / heads / head_dim / vocab equal to the target's, num_target_layers == target
// n_layers, target_layer_ids increasing in [-1, n_layers - 2], a vanilla Markov head (or none),
// confidence_temperatures (optional) B finite positive numbers, draft_vocab_ids (optional, see
// cut_draft_vocab), every tensor present with its
// expected shape and a BF16, F16 or F32 type. embed_tokens.weight and lm_head.weight may be
// absent: each missing one is the target's token embedding / output head. The draft layers'
// RoPE is rotate-half over the whole head whatever the target's layout, with the target's theta
// and scaling. The checkpoint keeps views of target's weights: target must outlive it. backend
// makes the cut heads (cut_draft_vocab).
Result<Checkpoint> load_checkpoint(const std::string& path, const Model& target, Backend& backend);

}  // namespace dspark::spec::dspark_detail
