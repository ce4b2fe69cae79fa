// DSpark draft layers: context K/V projection and the non-causal block pass.
#include "dspark_forward.h"

namespace dspark::spec::dspark_detail {

namespace {

// K = RoPE(k_norm(k)), V = v of the n rows projected into s.k and s.v, stored at slots in layer
// l (what forward_layer does for the rows it runs).
void store_projected_kv(const Checkpoint& ck, int l, const int32_t* positions /*[n]*/,
                        const int32_t* slots /*[n]*/, int64_t n, KvStorage& kv, LayerScratch& s,
                        Backend& backend) {
  const ModelConfig& c = ck.layers_config;
  const LayerWeights& L = ck.layers[size_t(l)];
  const int64_t kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  backend.rmsnorm(s.k.data(), L.k_norm.data(), n * c.n_kv_heads, c.head_dim, c.rms_eps, s.k.data());
  backend.rope(s.k.data(), positions, n, c.n_kv_heads, c.head_dim, c.rope);
  backend.store_kv(s.k.data(), slots, n, kv_dim, kv.k(l));
  backend.store_kv(s.v.data(), slots, n, kv_dim, kv.v(l));
}

}  // namespace

void write_context(const Checkpoint& ck, const float* features, const int32_t* positions,
                   const int32_t* slots, int64_t n, KvStorage& kv, LayerScratch& s,
                   Backend& backend) {
  if (n == 0) return;
  const ModelConfig& c = ck.layers_config;
  s.fit(c, n);
  backend.matmul(ck.fc, features, n, s.x.data());
  backend.rmsnorm(s.x.data(), ck.hidden_norm.data(), n, c.d_model, c.rms_eps, s.x.data());
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = ck.layers[size_t(l)];
    const WeightView* k_v[] = {&L.k, &L.v};
    float* const out[] = {s.k.data(), s.v.data()};
    backend.matmul_shared_input(k_v, out, 2, s.x.data(), n);
    store_projected_kv(ck, l, positions, slots, n, kv, s, backend);
  }
}

void run_block(const Checkpoint& ck, const BlockBatch& b, KvStorage& kv, LayerScratch& s,
               Backend& backend, std::vector<float>& h) {
  const ModelConfig& c = ck.layers_config;
  const int64_t n = b.rows(), d = c.d_model;
  s.fit(c, n);
  h.resize(size_t(n * d));
  if (n == 0) return;
  backend.gather_weight_rows(ck.embed, b.tokens.data(), n, s.x.data());
  // The block's own K/V go to scratch slots; every row of a request sees its context, then all
  // of its block's rows (non-causal).
  const LayerKeys keys{b.positions.data(), b.slots.data(), &b.plan};
  for (int l = 0; l < c.n_layers; ++l) {
    forward_layer(c, ck.layers[size_t(l)], l, keys, n, kv, s, backend);
  }
  backend.rmsnorm(s.x.data(), ck.norm.data(), n, d, c.rms_eps, h.data());
}

}  // namespace dspark::spec::dspark_detail
