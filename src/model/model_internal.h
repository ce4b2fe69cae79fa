// Private parts of Model: one layer's weights and the scratch buffers a forward reuses.
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/backend_cpu.h"
#include "dspark/model.h"

namespace dspark {

// Matrices point into the mapped file; the small vectors are converted to float at load.
struct Model::Layer {
  std::vector<float> attn_norm;  // [d_model]
  cpu::WeightView q;             // [n_heads * head_dim, d_model]
  cpu::WeightView k;             // [n_kv_heads * head_dim, d_model]
  cpu::WeightView v;             // [n_kv_heads * head_dim, d_model]
  cpu::WeightView o;             // [d_model, n_heads * head_dim]
  std::vector<float> q_bias;     // [n_heads * head_dim] with qkv_bias, else empty
  std::vector<float> k_bias;     // [n_kv_heads * head_dim] with qkv_bias, else empty
  std::vector<float> v_bias;     // [n_kv_heads * head_dim] with qkv_bias, else empty
  std::vector<float> q_norm;     // [head_dim] with qk_norm, else empty
  std::vector<float> k_norm;     // [head_dim] with qk_norm, else empty
  std::vector<float> ffn_norm;   // [d_model]
  cpu::WeightView gate;          // [d_ff, d_model]
  cpu::WeightView up;            // [d_ff, d_model]
  cpu::WeightView down;          // [d_model, d_ff]
};

// Activations of one forward; vectors only grow, so steady-state calls do not allocate.
struct Model::Scratch {
  std::vector<float> x;              // [n_tok, d_model] residual stream
  std::vector<float> xn;             // [n_tok, d_model] normed input of a sub-block
  std::vector<float> q;              // [n_tok, n_heads * head_dim]
  std::vector<float> k;              // [n_tok, n_kv_heads * head_dim]
  std::vector<float> v;              // [n_tok, n_kv_heads * head_dim]
  std::vector<float> attn;           // [n_tok, n_heads * head_dim]
  std::vector<float> proj;           // [n_tok, d_model] output of o / down before the residual add
  std::vector<float> gate;           // [n_tok, d_ff]
  std::vector<float> up;             // [n_tok, d_ff]
  std::vector<float> rows;           // [logit_rows, d_model] final-normed rows that get logits
  std::vector<int64_t> key_offsets;  // [n_tok + 1] into key_slots
  std::vector<int32_t> key_slots;    // [sum of key counts] each token's key slots, in order
  std::vector<uint8_t> slot_mark;    // [n_slots] per-slot flags used while validating

  // Grows the activations to n tokens, n_rows of them with logits (new elements are zeroed).
  void fit(const ModelConfig& c, int64_t n, size_t n_rows);
};

}  // namespace dspark
