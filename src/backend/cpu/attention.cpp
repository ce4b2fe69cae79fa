// Attention over fp16 K/V cache slots, threads over (token, kv head) pairs; the query heads of a
// group read each K/V row once. Also the K/V store and the double-precision reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention.h"

namespace dspark::cpu {
namespace {

bool valid(const AttentionArgs& a) {
  return a.n_tok >= 0 && a.n_heads > 0 && a.n_kv_heads > 0 && a.head_dim > 0 &&
         a.n_heads % a.n_kv_heads == 0 && a.plan != nullptr && a.plan->n_tok() == a.n_tok;
}

void fill_nan(const AttentionArgs& a) {
  if (a.out == nullptr || a.n_tok <= 0 || a.n_heads <= 0 || a.head_dim <= 0) return;
  std::fill(a.out, a.out + a.n_tok * a.n_heads * a.head_dim,
            std::numeric_limits<float>::quiet_NaN());
}

}  // namespace

int64_t attend_scratch_floats(const AttentionArgs& a, int64_t n_keys) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t hd16 = (a.head_dim + 15) / 16 * 16;
  return group * n_keys + kAvx2KeyBlock * hd16 + 2 * group * hd16 + group;
}

void attend_group_scalar(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                         float* scores) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t hd = a.head_dim;
  const int64_t n_keys = keys.n;
  const int64_t row = a.n_kv_heads * hd;
  for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
    const float* q = a.q + (t * a.n_heads + h) * hd;
    float* out = a.out + (t * a.n_heads + h) * hd;
    std::fill(out, out + hd, 0.0f);
    if (n_keys <= 0) continue;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n_keys; ++j) {
      const uint16_t* k = a.k_cache + keys.slots[j] * row + kv_head * hd;
      float s = 0.0f;
      for (int64_t d = 0; d < hd; ++d) s += q[d] * f16_to_f32(k[d]);
      scores[j] = s * a.scale;
      mx = std::max(mx, scores[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n_keys; ++j) {
      scores[j] = std::exp(scores[j] - mx);
      sum += scores[j];
    }
    for (int64_t j = 0; j < n_keys; ++j) {
      const uint16_t* v = a.v_cache + keys.slots[j] * row + kv_head * hd;
      for (int64_t d = 0; d < hd; ++d) out[d] += scores[j] * f16_to_f32(v[d]);
    }
    const float inv = 1.0f / sum;
    for (int64_t d = 0; d < hd; ++d) out[d] *= inv;
  }
}

namespace {

// Output of head h of token t from its chunks' partials (in list order): each chunk's sums
// rescaled by exp(m_c - max m), then divided by the total. A token with one chunk gets
// exp(0) = 1 and so the partial divided by its own sum, whichever pool run calls this.
void merge_head(const AttentionArgs& a, int64_t t, int64_t h, const float* part /*[chunks, ...]*/,
                int64_t c_begin, int64_t c_end, int64_t per_chunk) {
  const int64_t hd = a.head_dim;
  float* out = a.out + (t * a.n_heads + h) * hd;
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t c = c_begin; c < c_end; ++c) {
    const float* p = part + c * per_chunk + h * (2 + hd);
    if (p[1] > 0.0f) m = std::max(m, p[0]);
  }
  std::fill(out, out + hd, 0.0f);
  float l = 0.0f;
  for (int64_t c = c_begin; c < c_end; ++c) {
    const float* p = part + c * per_chunk + h * (2 + hd);
    if (!(p[1] > 0.0f)) continue;
    const float f = std::exp(p[0] - m);
    l += p[1] * f;
    for (int64_t d = 0; d < hd; ++d) out[d] += p[2 + d] * f;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int64_t d = 0; d < hd; ++d) out[d] *= inv;
}

// The split kernel: per (token, kv head, chunk) partial results, then an in-order merge. A
// token with a single chunk (up to kKeyChunk keys, the usual case) is merged by the task that
// computed it, which saves the second pool run when no token has more.
void attention_chunked(const AttentionArgs& a, ThreadPool& pool) {
  const int64_t group = a.n_heads / a.n_kv_heads, hd = a.head_dim;
  // first[t] = index of token t's first chunk; every token has at least one (maybe empty).
  thread_local std::vector<int64_t> first, chunk_token;
  thread_local std::vector<float> partials;  // [chunks, n_heads, 2 + hd]
  first.assign(static_cast<size_t>(a.n_tok + 1), 0);
  for (int64_t t = 0; t < a.n_tok; ++t) {
    const int64_t n_keys = a.plan->n_keys(t);
    first[t + 1] = first[t] + std::max<int64_t>(1, (n_keys + kKeyChunk - 1) / kKeyChunk);
  }
  const int64_t n_chunks = first[a.n_tok];
  chunk_token.resize(static_cast<size_t>(n_chunks));
  for (int64_t t = 0; t < a.n_tok; ++t) {
    for (int64_t c = first[t]; c < first[t + 1]; ++c) chunk_token[c] = t;
  }
  const int64_t per_chunk = a.n_heads * (2 + hd);
  partials.resize(static_cast<size_t>(n_chunks * per_chunk));
  const int64_t* first_p = first.data();
  const int64_t* token_p = chunk_token.data();
  float* part = partials.data();
  pool.run(n_chunks * a.n_kv_heads, [&](int64_t task, int) {
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(attend_chunk_scratch_floats(a)));
    const int64_t cg = task / a.n_kv_heads, kvh = task % a.n_kv_heads;
    const int64_t t = token_p[cg];
    // The chunk's keys: [j0, j0 + kKeyChunk) of the token's, fewer in its last chunk.
    int32_t slots[kKeyChunk];
    const int64_t j0 = (cg - first_p[t]) * kKeyChunk;
    const int64_t nk = std::clamp<int64_t>(a.plan->n_keys(t) - j0, 0, kKeyChunk);
    resolve_keys(*a.plan, t, j0, nk, slots);
    attend_chunk_avx512(a, t, KeyList{slots, nk}, kvh, scratch.data(),
                        part + cg * per_chunk + kvh * group * (2 + hd));
    if (first_p[t + 1] - first_p[t] == 1) {
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        merge_head(a, t, h, part, cg, cg + 1, per_chunk);
      }
    }
  });
  if (n_chunks == a.n_tok) return;
  pool.run(a.n_tok, [&](int64_t t, int) {
    if (first_p[t + 1] - first_p[t] == 1) return;  // merged above
    for (int64_t h = 0; h < a.n_heads; ++h) {
      merge_head(a, t, h, part, first_p[t], first_p[t + 1], per_chunk);
    }
  });
}

}  // namespace

void attention(const AttentionArgs& a, ThreadPool& pool) {
  if (!valid(a)) {
    fill_nan(a);
    return;
  }
  if (a.n_tok == 0) return;
  profile::Scope timing("attention");
  if (active_isa() == Isa::Avx512 && attend_chunked_avx512_supports(a.head_dim)) {
    attention_chunked(a, pool);
    return;
  }
  AttendGroup kernel = active_isa() == Isa::Avx512 ? attend_group_avx512
                       : active_isa() == Isa::Avx2 ? attend_group_avx2
                                                   : attend_group_scalar;
  const int64_t n_tasks = a.n_tok * a.n_kv_heads;
  pool.run(n_tasks, [&](int64_t task, int) {
    thread_local std::vector<float> scratch;
    thread_local std::vector<int32_t> slots;
    const int64_t t = task / a.n_kv_heads;
    const int64_t n_keys = a.plan->n_keys(t);
    slots.resize(static_cast<size_t>(n_keys));
    resolve_keys(*a.plan, t, 0, n_keys, slots.data());
    scratch.resize(static_cast<size_t>(attend_scratch_floats(a, n_keys)));
    kernel(a, t, KeyList{slots.data(), n_keys}, task % a.n_kv_heads, scratch.data());
  });
}

void attention_reference(const AttentionArgs& a) {
  if (!valid(a)) {
    fill_nan(a);
    return;
  }
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t hd = a.head_dim;
  const int64_t row = a.n_kv_heads * hd;
  std::vector<double> s, acc(static_cast<size_t>(hd));
  std::vector<int32_t> slots;
  for (int64_t t = 0; t < a.n_tok; ++t) {
    const int64_t n_keys = a.plan->n_keys(t);
    slots.resize(static_cast<size_t>(n_keys));
    resolve_keys(*a.plan, t, 0, n_keys, slots.data());
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t kvh = h / group;
      const float* q = a.q + (t * a.n_heads + h) * hd;
      s.assign(static_cast<size_t>(std::max<int64_t>(n_keys, 0)), 0.0);
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_keys; ++j) {
        const uint16_t* k = a.k_cache + slots[j] * row + kvh * hd;
        for (int64_t d = 0; d < hd; ++d) s[j] += double(q[d]) * double(f16_to_f32(k[d]));
        s[j] *= a.scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < n_keys; ++j) {
        const double p = std::exp(s[j] - mx);
        sum += p;
        const uint16_t* v = a.v_cache + slots[j] * row + kvh * hd;
        for (int64_t d = 0; d < hd; ++d) acc[d] += p * double(f16_to_f32(v[d]));
      }
      float* out = a.out + (t * a.n_heads + h) * hd;
      for (int64_t d = 0; d < hd; ++d) out[d] = n_keys > 0 ? float(acc[d] / sum) : 0.0f;
    }
  }
}

void store_kv_f16(const float* kv, const int32_t* slots, int64_t n_tok, int64_t row_elems,
                  uint16_t* cache) {
  profile::Scope timing("store kv");
  if (active_isa() == Isa::Avx512) {
    store_kv_f16_avx512(kv, slots, n_tok, row_elems, cache);
    return;
  }
  if (active_isa() == Isa::Avx2) {
    store_kv_f16_avx2(kv, slots, n_tok, row_elems, cache);
    return;
  }
  for (int64_t t = 0; t < n_tok; ++t) {
    uint16_t* dst = cache + int64_t(slots[t]) * row_elems;
    for (int64_t i = 0; i < row_elems; ++i) dst[i] = f32_to_f16(kv[t * row_elems + i]);
  }
}

}  // namespace dspark::cpu
