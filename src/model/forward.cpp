// Model::forward: embeddings, the transformer layers over the CPU kernels, final norm and the
// logits of the requested rows.
#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "batch_plan.h"
#include "model_internal.h"

namespace dspark {

namespace {

template <class T>
void ensure(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// y[t, :] += bias for every token row.
void add_bias(float* y /*[n, dim]*/, const std::vector<float>& bias /*[dim]*/, int64_t n) {
  const int64_t dim = static_cast<int64_t>(bias.size());
  for (int64_t t = 0; t < n; ++t) cpu::add_inplace(y + t * dim, bias.data(), dim);
}

// Copies the residual stream into capture slot c of every token.
void capture(const float* x /*[n, d]*/, int64_t n, int64_t d, size_t c, size_t n_capture,
             float* hidden /*[n, n_capture, d]*/) {
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(hidden + (t * int64_t(n_capture) + int64_t(c)) * d, x + t * d,
                sizeof(float) * size_t(d));
  }
}

}  // namespace

void Model::run_layer(int l, const ForwardBatch& batch, KvStorage& kv, Scratch& s,
                      cpu::ThreadPool& pool) const {
  const ModelConfig& c = config_;
  const Layer& L = layers_[l];
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t d = c.d_model, hd = c.head_dim, d_ff = c.d_ff;
  const int64_t kv_dim = c.n_kv_heads * hd;
  const float eps = c.rms_eps;

  // Attention block.
  cpu::rmsnorm(s.x.data(), L.attn_norm.data(), n, d, eps, s.xn.data());
  {
    const cpu::WeightView* qkv[] = {&L.q, &L.k, &L.v};
    float* const out[] = {s.q.data(), s.k.data(), s.v.data()};
    cpu::matmul_shared_input(qkv, out, 3, s.xn.data(), n, pool);
  }
  if (c.qkv_bias) {
    add_bias(s.q.data(), L.q_bias, n);
    add_bias(s.k.data(), L.k_bias, n);
    add_bias(s.v.data(), L.v_bias, n);
  }
  if (c.qk_norm) {  // qwen3: RMS norm of every head before RoPE
    cpu::rmsnorm(s.q.data(), L.q_norm.data(), n * c.n_heads, hd, eps, s.q.data());
    cpu::rmsnorm(s.k.data(), L.k_norm.data(), n * c.n_kv_heads, hd, eps, s.k.data());
  }
  cpu::rope(s.q.data(), batch.positions.data(), n, c.n_heads, hd, c.rope);
  cpu::rope(s.k.data(), batch.positions.data(), n, c.n_kv_heads, hd, c.rope);
  cpu::store_kv_f16(s.k.data(), batch.kv_slots.data(), n, kv_dim, kv.k(l));
  cpu::store_kv_f16(s.v.data(), batch.kv_slots.data(), n, kv_dim, kv.v(l));

  cpu::attention(cpu::attention_args(n, c.n_heads, c.n_kv_heads, hd, s.q.data(), kv.k(l), kv.v(l),
                                     s.key_offsets.data(), s.key_slots.data(), s.attn.data()),
                 pool);
  cpu::matmul(L.o, s.attn.data(), n, s.proj.data(), pool);
  cpu::add_inplace(s.x.data(), s.proj.data(), n * d);

  // Feed-forward block (SwiGLU).
  cpu::rmsnorm(s.x.data(), L.ffn_norm.data(), n, d, eps, s.xn.data());
  {
    const cpu::WeightView* gate_up[] = {&L.gate, &L.up};
    float* const out[] = {s.gate.data(), s.up.data()};
    cpu::matmul_shared_input(gate_up, out, 2, s.xn.data(), n, pool);
  }
  float* gate = s.gate.data();
  const float* up = s.up.data();
  {
    cpu::profile::Scope timing("silu_mul");
    pool.run(n, [&](int64_t t, int) {
      cpu::silu_mul(gate + t * d_ff, up + t * d_ff, d_ff, gate + t * d_ff);
    });
  }
  cpu::matmul(L.down, s.gate.data(), n, s.proj.data(), pool);
  cpu::add_inplace(s.x.data(), s.proj.data(), n * d);
}

void Model::Scratch::fit(const ModelConfig& c, int64_t n, size_t n_rows) {
  const int64_t d = c.d_model;
  ensure(x, size_t(n * d));
  ensure(xn, size_t(n * d));
  ensure(q, size_t(n * c.n_heads * c.head_dim));
  ensure(k, size_t(n * c.n_kv_heads * c.head_dim));
  ensure(v, size_t(n * c.n_kv_heads * c.head_dim));
  ensure(attn, size_t(n * c.n_heads * c.head_dim));
  ensure(proj, size_t(n * d));
  ensure(gate, size_t(n * c.d_ff));
  ensure(up, size_t(n * c.d_ff));
  ensure(rows, n_rows * size_t(d));
}

Status Model::reserve(int64_t n_tokens) const {
  if (n_tokens < 1) return Status::Ok();
  std::lock_guard<std::mutex> lock(forward_mutex_);
  try {
    scratch_->fit(config_, n_tokens, size_t(n_tokens));
  } catch (const std::bad_alloc&) {
    return Error{"cannot allocate the activations of a " + std::to_string(n_tokens) +
                 "-token step"};
  }
  return Status::Ok();
}

Status Model::forward(const ForwardBatch& batch, KvStorage& kv, ForwardOutput& out,
                      cpu::ThreadPool& pool) const {
  std::lock_guard<std::mutex> lock(forward_mutex_);
  Scratch& s = *scratch_;
  const ModelConfig& c = config_;
  DSPARK_RETURN_IF_ERROR(
      model_detail::plan_batch(c, batch, kv, &s.key_offsets, &s.key_slots, &s.slot_mark));
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t d = c.d_model;
  const size_t n_capture = batch.capture_layers.size();
  const size_t n_rows = batch.logit_rows.size();
  // Every element is overwritten below (each capture layer is validated to exist).
  const int64_t n_vocab = batch.logit_vocab > 0 ? batch.logit_vocab : c.vocab_size;
  out.logits.resize(n_rows * size_t(n_vocab));
  out.hidden.resize(size_t(n) * n_capture * size_t(d));
  if (n == 0) return Status::Ok();

  s.fit(c, n, n_rows);

  auto capture_layer = [&](int layer) {
    for (size_t i = 0; i < n_capture; ++i) {
      if (batch.capture_layers[i] == layer)
        capture(s.x.data(), n, d, i, n_capture, out.hidden.data());
    }
  };
  {
    cpu::profile::Scope timing("embedding rows");
    for (int64_t t = 0; t < n; ++t) cpu::get_row(token_embd_, batch.tokens[t], s.x.data() + t * d);
  }
  capture_layer(-1);
  for (int l = 0; l < c.n_layers; ++l) {
    run_layer(l, batch, kv, s, pool);
    capture_layer(l);
  }
  if (n_rows == 0) return Status::Ok();
  // Only the requested rows go through the final norm and the (large) output projection.
  for (size_t i = 0; i < n_rows; ++i) {
    std::memcpy(s.rows.data() + i * size_t(d), s.x.data() + int64_t(batch.logit_rows[i]) * d,
                sizeof(float) * size_t(d));
  }
  cpu::rmsnorm(s.rows.data(), output_norm_.data(), int64_t(n_rows), d, c.rms_eps, s.rows.data());
  cpu::WeightView head = output_;  // rows are token ids: a prefix of them is a smaller head
  head.rows = n_vocab;
  cpu::matmul(head, s.rows.data(), int64_t(n_rows), out.logits.data(), pool);
  return Status::Ok();
}

}  // namespace dspark
