// DSpark draft layers: context K/V projection and the non-causal block pass.
#include "dspark_forward.h"

namespace dspark::spec::dspark_detail {

namespace {

template <class T>
void ensure(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
}

void ensure_all(const ModelConfig& c, int64_t n, Scratch& s) {
  ensure(s.ctx, n * c.d_model);
  ensure(s.xn, n * c.d_model);
  ensure(s.q, n * c.n_heads * c.head_dim);
  ensure(s.k, n * c.n_kv_heads * c.head_dim);
  ensure(s.v, n * c.n_kv_heads * c.head_dim);
  ensure(s.attn, n * c.n_heads * c.head_dim);
  ensure(s.proj, n * c.d_model);
  ensure(s.gate, n * c.d_ff);
  ensure(s.up, n * c.d_ff);
}

// K = RoPE(k_norm(k)), V = v of the n rows projected into s.k and s.v, stored at slots in layer
// l. The projections are the callers': the block pass runs q, k and v over one quantization of
// its input, the context only k and v.
void store_projected_kv(const Checkpoint& ck, int l, const int32_t* positions /*[n]*/,
                        const int32_t* slots /*[n]*/, int64_t n, KvStorage& kv, Scratch& s) {
  const ModelConfig& c = ck.layers_config;
  const DraftLayer& L = ck.layers[size_t(l)];
  const int64_t kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  cpu::rmsnorm(s.k.data(), L.k_norm.data(), n * c.n_kv_heads, c.head_dim, c.rms_eps, s.k.data());
  cpu::rope(s.k.data(), positions, n, c.n_kv_heads, c.head_dim, c.rope);
  cpu::store_kv_f16(s.k.data(), slots, n, kv_dim, kv.k(l));
  cpu::store_kv_f16(s.v.data(), slots, n, kv_dim, kv.v(l));
}

}  // namespace

void write_context(const Checkpoint& ck, const float* features, const int32_t* positions,
                   const int32_t* slots, int64_t n, KvStorage& kv, Scratch& s,
                   cpu::ThreadPool& pool) {
  if (n == 0) return;
  const ModelConfig& c = ck.layers_config;
  ensure_all(c, n, s);
  cpu::matmul(ck.fc, features, n, s.ctx.data(), pool);
  cpu::rmsnorm(s.ctx.data(), ck.hidden_norm.data(), n, c.d_model, c.rms_eps, s.ctx.data());
  for (int l = 0; l < c.n_layers; ++l) {
    const DraftLayer& L = ck.layers[size_t(l)];
    const cpu::WeightView* k_v[] = {&L.k, &L.v};
    float* const out[] = {s.k.data(), s.v.data()};
    cpu::matmul_shared_input(k_v, out, 2, s.ctx.data(), n, pool);
    store_projected_kv(ck, l, positions, slots, n, kv, s);
  }
}

void run_block(const Checkpoint& ck, const BlockBatch& b, KvStorage& kv, Scratch& s,
               cpu::ThreadPool& pool, std::vector<float>& h) {
  const ModelConfig& c = ck.layers_config;
  const int64_t n = b.rows(), d = c.d_model, hd = c.head_dim, d_ff = c.d_ff;
  ensure_all(c, n, s);
  h.resize(size_t(n * d));
  if (n == 0) return;
  float* x = s.ctx.data();  // the residual stream
  for (int64_t t = 0; t < n; ++t) cpu::get_row(ck.embed, b.tokens[size_t(t)], x + t * d);

  for (int l = 0; l < c.n_layers; ++l) {
    const DraftLayer& L = ck.layers[size_t(l)];
    cpu::rmsnorm(x, L.attn_norm.data(), n, d, c.rms_eps, s.xn.data());
    {
      const cpu::WeightView* qkv[] = {&L.q, &L.k, &L.v};
      float* const out[] = {s.q.data(), s.k.data(), s.v.data()};
      cpu::matmul_shared_input(qkv, out, 3, s.xn.data(), n, pool);
    }
    cpu::rmsnorm(s.q.data(), L.q_norm.data(), n * c.n_heads, hd, c.rms_eps, s.q.data());
    cpu::rope(s.q.data(), b.positions.data(), n, c.n_heads, hd, c.rope);
    // The block's own K/V go to scratch slots; every row of a request then sees all of them
    // (non-causal) after its context.
    store_projected_kv(ck, l, b.positions.data(), b.slots.data(), n, kv, s);

    cpu::attention(cpu::attention_args(n, c.n_heads, c.n_kv_heads, hd, s.q.data(), kv.k(l), kv.v(l),
                                       b.key_offsets.data(), b.key_slots.data(), s.attn.data()),
                   pool);
    cpu::matmul(L.o, s.attn.data(), n, s.proj.data(), pool);
    cpu::add_inplace(x, s.proj.data(), n * d);

    cpu::rmsnorm(x, L.ffn_norm.data(), n, d, c.rms_eps, s.xn.data());
    {
      const cpu::WeightView* gate_up[] = {&L.gate, &L.up};
      float* const out[] = {s.gate.data(), s.up.data()};
      cpu::matmul_shared_input(gate_up, out, 2, s.xn.data(), n, pool);
    }
    cpu::silu_mul(s.gate.data(), s.up.data(), n * d_ff, s.gate.data());
    cpu::matmul(L.down, s.gate.data(), n, s.proj.data(), pool);
    cpu::add_inplace(x, s.proj.data(), n * d);
  }
  cpu::rmsnorm(x, ck.norm.data(), n, d, c.rms_eps, h.data());
}

}  // namespace dspark::spec::dspark_detail
