// forward_layer: one pre-norm transformer layer as a sequence of backend ops, shared by the
// model's layers and the DSpark draft layers.
#include "dspark/model.h"

namespace dspark {

namespace {

template <class T>
void ensure(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
}

}  // namespace

void LayerScratch::fit(const ModelConfig& c, int64_t n) {
  ensure(x, n * c.d_model);
  ensure(xn, n * c.d_model);
  ensure(q, n * c.n_heads * c.head_dim);
  ensure(k, n * c.n_kv_heads * c.head_dim);
  ensure(v, n * c.n_kv_heads * c.head_dim);
  ensure(attn, n * c.n_heads * c.head_dim);
  ensure(proj, n * c.d_model);
  ensure(gate, n * c.d_ff);
  ensure(up, n * c.d_ff);
}

void forward_layer(const ModelConfig& c, const LayerWeights& L, int kv_layer, const LayerKeys& keys,
                   int64_t n, KvStorage& kv, LayerScratch& s, Backend& be) {
  float* x = s.x.data();  // [n, d_model]
  const int64_t d = c.d_model, hd = c.head_dim;
  const int64_t kv_dim = c.n_kv_heads * hd;
  const float eps = c.rms_eps;

  // Attention block.
  be.rmsnorm(x, L.attn_norm.data(), n, d, eps, s.xn.data());
  {
    const WeightView* qkv[] = {&L.q, &L.k, &L.v};
    float* const out[] = {s.q.data(), s.k.data(), s.v.data()};
    be.matmul_shared_input(qkv, out, 3, s.xn.data(), n);
  }
  if (c.qkv_bias) {
    be.add_rows(s.q.data(), L.q_bias.data(), n, int64_t(L.q_bias.size()));
    be.add_rows(s.k.data(), L.k_bias.data(), n, int64_t(L.k_bias.size()));
    be.add_rows(s.v.data(), L.v_bias.data(), n, int64_t(L.v_bias.size()));
  }
  if (c.qk_norm) {  // qwen3: RMS norm of every head before RoPE
    be.rmsnorm(s.q.data(), L.q_norm.data(), n * c.n_heads, hd, eps, s.q.data());
    be.rmsnorm(s.k.data(), L.k_norm.data(), n * c.n_kv_heads, hd, eps, s.k.data());
  }
  be.rope(s.q.data(), keys.positions, n, c.n_heads, hd, c.rope);
  be.rope(s.k.data(), keys.positions, n, c.n_kv_heads, hd, c.rope);
  be.store_kv(s.k.data(), keys.kv_slots, n, kv_dim, kv.k(kv_layer));
  be.store_kv(s.v.data(), keys.kv_slots, n, kv_dim, kv.v(kv_layer));

  be.attention(attention_args(*keys.plan, c.n_heads, c.n_kv_heads, hd, s.q.data(), kv.k(kv_layer),
                              kv.v(kv_layer), s.attn.data()));
  be.matmul(L.o, s.attn.data(), n, s.proj.data());
  be.add(x, s.proj.data(), n * d);

  // Feed-forward block (SwiGLU).
  be.rmsnorm(x, L.ffn_norm.data(), n, d, eps, s.xn.data());
  {
    const WeightView* gate_up[] = {&L.gate, &L.up};
    float* const out[] = {s.gate.data(), s.up.data()};
    be.matmul_shared_input(gate_up, out, 2, s.xn.data(), n);
  }
  be.silu_mul(s.gate.data(), s.up.data(), n, c.d_ff);
  be.matmul(L.down, s.gate.data(), n, s.proj.data());
  be.add(x, s.proj.data(), n * d);
}

}  // namespace dspark
