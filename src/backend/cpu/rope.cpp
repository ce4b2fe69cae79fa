// Rotary position embedding. Frequencies (with the model's scaling) and the per-position
// cos/sin are computed in double and rounded once to float. Tables of the last few calls are
// kept, since a forward applies the same positions to q and k of every layer (with one or two
// parameter sets: some models alternate local and global layers).
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "dspark/backend_cpu.h"
#include "rope_simd.h"

namespace dspark::cpu {
namespace {

bool same_params(const RopeParams& a, const RopeParams& b) {
  return a.layout == b.layout && a.rot_dims == b.rot_dims && a.theta == b.theta &&
         a.scaling == b.scaling && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor && a.original_context == b.original_context &&
         a.yarn_beta_fast == b.yarn_beta_fast && a.yarn_beta_slow == b.yarn_beta_slow;
}

// cos/sin of every (position, pair), for the positions of the last call.
struct RopeTable {
  bool valid = false;
  RopeParams params;
  std::vector<double> inv_freq;
  double mscale = 1.0;
  std::vector<int32_t> positions;
  std::vector<float> cos, sin;  // [n_tok, rot_dims / 2]
};

const RopeTable& table_for(const RopeParams& p, const int32_t* positions, int64_t n_tok) {
  thread_local std::array<RopeTable, 4> cache;
  thread_local size_t next = 0;
  for (const RopeTable& c : cache) {
    if (c.valid && same_params(c.params, p) && c.positions.size() == size_t(n_tok) &&
        std::equal(positions, positions + n_tok, c.positions.begin())) {
      return c;
    }
  }
  RopeTable* slot = nullptr;
  for (RopeTable& c : cache) {
    if (c.valid && same_params(c.params, p)) slot = &c;
  }
  if (slot == nullptr) {
    slot = &cache[next];
    next = (next + 1) % cache.size();
    slot->params = p;
    slot->inv_freq = rope_inv_frequencies(p, &slot->mscale);
    slot->valid = true;
  }
  RopeTable& t = *slot;
  t.positions.assign(positions, positions + n_tok);
  const int64_t half = p.rot_dims / 2;
  t.cos.resize(static_cast<size_t>(n_tok * half));
  t.sin.resize(static_cast<size_t>(n_tok * half));
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int64_t j = 0; j < half; ++j) {
      const double angle = double(positions[i]) * t.inv_freq[j];
      t.cos[i * half + j] = static_cast<float>(std::cos(angle) * t.mscale);
      t.sin[i * half + j] = static_cast<float>(std::sin(angle) * t.mscale);
    }
  }
  return t;
}

}  // namespace

void rope(float* x, const int32_t* positions, int64_t n_tok, int64_t n_heads, int64_t head_dim,
          const RopeParams& params) {
  const int64_t half = params.rot_dims / 2;
  if (n_tok <= 0 || half <= 0 || params.rot_dims > head_dim) return;
  profile::Scope timing("rope");
  const RopeTable& t = table_for(params, positions, n_tok);
  if (active_isa() == Isa::Avx512) {
    rope_rotate_avx512(x, t.cos.data(), t.sin.data(), n_tok, n_heads, head_dim, half,
                       params.layout);
    return;
  }
  for (int64_t i = 0; i < n_tok; ++i) {
    const float* c = t.cos.data() + i * half;
    const float* s = t.sin.data() + i * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (i * n_heads + h) * head_dim;
      for (int64_t j = 0; j < half; ++j) {
        // Interleaved rotates (2j, 2j+1); Neox rotates (j, j + half).
        float* a = params.layout == RopeLayout::Interleaved ? v + 2 * j : v + j;
        float* b = params.layout == RopeLayout::Interleaved ? v + 2 * j + 1 : v + j + half;
        const float x0 = *a, x1 = *b;
        *a = x0 * c[j] - x1 * s[j];
        *b = x0 * s[j] + x1 * c[j];
      }
    }
  }
}

}  // namespace dspark::cpu
