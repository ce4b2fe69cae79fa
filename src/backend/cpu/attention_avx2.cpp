// AVX2 attention (F16C conversions, 8-wide FMA) and the fp16 K/V store, for CPUs without
// AVX-512. attend_group: the whole key list of one token for the query heads of a kv head, two
// passes (scores, then softmax-weighted V) as the scalar kernel does. Per head the operation
// order is fixed by its own key list, so results depend neither on the group, the batch nor the
// thread count.
#include <algorithm>
#include <cstring>

#include "attention.h"

#pragma GCC target("avx2,fma,f16c")
#include "avx2_math.h"

namespace dspark::cpu {
namespace {

// fp16 row[n] -> fp32 out[n rounded up to 8] (tail lanes zero).
void convert_row(const uint16_t* row, int64_t n, float* out) {
  int64_t d = 0;
  for (; d + 8 <= n; d += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + d));
    _mm256_storeu_ps(out + d, _mm256_cvtph_ps(h));
  }
  if (d < n) {
    uint16_t tail[8] = {};
    std::memcpy(tail, row + d, size_t(n - d) * sizeof(uint16_t));
    _mm256_storeu_ps(out + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<__m128i*>(tail))));
  }
}

// Keys ahead of the one being converted whose rows are prefetched: the rows are scattered
// over the KV pool (one slice of each row per kv head), so the hardware prefetchers miss many.
constexpr int64_t kPrefetchKeys = 32;

// A token's keys for one kv head: the fp16 slice of key j's row in cache is at(j).
struct HeadKeys {
  HeadKeys(const AttentionArgs& a, const uint16_t* cache, KeyList keys, int64_t kv_head)
      : slots(keys.slots),
        n(keys.n),
        row(a.n_kv_heads * a.head_dim),
        head_dim(a.head_dim),
        base(cache + kv_head * a.head_dim) {}
  const uint16_t* at(int64_t j) const { return base + slots[j] * row; }
  // Asks for the cache lines of key j's slice, if there is such a key. Always inlined: GCC's
  // IPA takes a function that only prefetches for one without effects and drops its calls.
  [[gnu::always_inline]] void prefetch(int64_t j) const {
    if (j >= n) return;
    const char* p = reinterpret_cast<const char*>(at(j));
    for (int64_t b = 0; b < head_dim * 2; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
  }

  const int32_t* slots;
  int64_t n;         // keys
  int64_t row;       // fp16 per slot in the cache (all kv heads)
  int64_t head_dim;  // fp16 per slice
  const uint16_t* base;
};

// [hsum_ps(v[0]), ..., hsum_ps(v[7])] with hsum_ps's additions in its order, so a block of
// keys scores bit for bit like one key at a time: per vector, lo + hi halves, then lanes 0 + 2
// and 1 + 3, then those two.
__m256 hsum8_ps(const __m256* v) {
  __m256 s[4];  // s[k]: the half sums of v[k] (low 128 bits) and v[k + 4] (high)
  for (int k = 0; k < 4; ++k) {
    s[k] = _mm256_add_ps(_mm256_permute2f128_ps(v[k], v[k + 4], 0x20),
                         _mm256_permute2f128_ps(v[k], v[k + 4], 0x31));
  }
  // Per 128-bit lane: [t0(k), t0(k+1), t1(k), t1(k+1)], t0 = lanes 0 + 2, t1 = lanes 1 + 3.
  const __m256 m = _mm256_add_ps(_mm256_unpacklo_ps(s[0], s[1]), _mm256_unpackhi_ps(s[0], s[1]));
  const __m256 n = _mm256_add_ps(_mm256_unpacklo_ps(s[2], s[3]), _mm256_unpackhi_ps(s[2], s[3]));
  const __m256 t0 = _mm256_castpd_ps(
      _mm256_unpacklo_pd(_mm256_castps_pd(m), _mm256_castps_pd(n)));  // t0 of k = 0..3
  const __m256 t1 = _mm256_castpd_ps(
      _mm256_unpackhi_pd(_mm256_castps_pd(m), _mm256_castps_pd(n)));  // t1 of k = 0..3
  return _mm256_add_ps(t0, t1);
}

// Scores of every key for each query head of the group: s[g, j] = scale * q_g . k_j, eight
// keys at a time (their rows converted once for all heads), the rest one by one; each score is
// the same FMA chain and horizontal sum either way.
void scores_pass(const AttentionArgs& a, KeyList list, int64_t kv_head, int64_t hd8,
                 const float* qs /*[group, hd8]*/, float* rows /*[kAvx2KeyBlock, hd8]*/,
                 float* scores /*[group, n_keys]*/) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const HeadKeys keys(a, a.k_cache, list, kv_head);
  const int64_t n_keys = keys.n;
  int64_t j = 0;
  for (; j + kAvx2KeyBlock <= n_keys; j += kAvx2KeyBlock) {
    for (int64_t b = 0; b < kAvx2KeyBlock; ++b) {
      keys.prefetch(j + b + kPrefetchKeys);
      convert_row(keys.at(j + b), a.head_dim, rows + b * hd8);
    }
    for (int64_t g = 0; g < group; ++g) {
      __m256 acc[kAvx2KeyBlock];
      for (auto& v : acc) v = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd8; d += 8) {
        const __m256 q = _mm256_loadu_ps(qs + g * hd8 + d);
        for (int64_t b = 0; b < kAvx2KeyBlock; ++b) {
          acc[b] = _mm256_fmadd_ps(q, _mm256_loadu_ps(rows + b * hd8 + d), acc[b]);
        }
      }
      _mm256_storeu_ps(scores + g * n_keys + j,
                       _mm256_mul_ps(hsum8_ps(acc), _mm256_set1_ps(a.scale)));
    }
  }
  for (; j < n_keys; ++j) {
    convert_row(keys.at(j), a.head_dim, rows);
    for (int64_t g = 0; g < group; ++g) {
      __m256 s = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd8; d += 8) {
        s = _mm256_fmadd_ps(_mm256_loadu_ps(qs + g * hd8 + d), _mm256_loadu_ps(rows + d), s);
      }
      scores[g * n_keys + j] = avx2::hsum_ps(s) * a.scale;
    }
  }
}

// out[0, 8 NV) += sum_b w[b] rows[b][0, 8 NV) for b in [0, nb) in order, out held in registers.
template <int NV>
void accumulate(const float* w, int64_t nb, const float* rows, int64_t stride, float* out) {
  __m256 o[NV];
  for (int v = 0; v < NV; ++v) o[v] = _mm256_loadu_ps(out + 8 * v);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 wb = _mm256_set1_ps(w[b]);
    for (int v = 0; v < NV; ++v) {
      o[v] = _mm256_fmadd_ps(wb, _mm256_loadu_ps(rows + b * stride + 8 * v), o[v]);
    }
  }
  for (int v = 0; v < NV; ++v) _mm256_storeu_ps(out + 8 * v, o[v]);
}

// acc[g] += sum_j p[g, j] v_j over the key list in order, eight keys' V rows converted at a
// time and a head's accumulators held in registers 64 floats at a time.
void values_pass(const AttentionArgs& a, KeyList list, int64_t kv_head, int64_t hd8,
                 const float* p /*[group, n_keys]*/, float* rows /*[kAvx2KeyBlock, hd8]*/,
                 float* acc /*[group, hd8]*/) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const HeadKeys keys(a, a.v_cache, list, kv_head);
  const int64_t n_keys = keys.n;
  for (int64_t j = 0; j < n_keys; j += kAvx2KeyBlock) {
    const int64_t nb = std::min(kAvx2KeyBlock, n_keys - j);
    for (int64_t b = 0; b < nb; ++b) {
      keys.prefetch(j + b + kPrefetchKeys);
      convert_row(keys.at(j + b), a.head_dim, rows + b * hd8);
    }
    for (int64_t g = 0; g < group; ++g) {
      int64_t d0 = 0;
      for (; d0 + 64 <= hd8; d0 += 64) {
        accumulate<8>(p + g * n_keys + j, nb, rows + d0, hd8, acc + g * hd8 + d0);
      }
      for (; d0 < hd8; d0 += 8)
        accumulate<1>(p + g * n_keys + j, nb, rows + d0, hd8, acc + g * hd8 + d0);
    }
  }
}

// Replaces s[0, n) by exp(s - max s) and returns 1 / their sum (0 for no keys).
float softmax_row(float* s, int64_t n) {
  if (n <= 0) return 0.0f;
  __m256 mx = _mm256_set1_ps(-__builtin_inff());
  for (int64_t j = 0; j < n; j += 8) {
    const __m256 m = avx2::lane_mask(n - j);
    const __m256 v = _mm256_maskload_ps(s + j, _mm256_castps_si256(m));
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), v, m));
  }
  const __m256 top = _mm256_set1_ps(avx2::hmax_ps(mx));
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; j += 8) {
    const __m256 m = avx2::lane_mask(n - j);
    const __m256 v = _mm256_maskload_ps(s + j, _mm256_castps_si256(m));
    const __m256 p = _mm256_and_ps(avx2::exp_ps(_mm256_sub_ps(v, top)), m);
    _mm256_maskstore_ps(s + j, _mm256_castps_si256(m), p);
    sum = _mm256_add_ps(sum, p);
  }
  return 1.0f / avx2::hsum_ps(sum);
}

}  // namespace

void attend_group_avx2(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                       float* scratch) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t hd = a.head_dim;
  const int64_t hd8 = (hd + 7) / 8 * 8;
  const int64_t n_keys = keys.n;
  const int64_t h0 = kv_head * group;
  // scratch (attend_scratch_floats): [group, n_keys] scores, kAvx2KeyBlock converted K/V rows
  // [kAvx2KeyBlock, hd8], the group's queries and accumulators [group, hd8] each, and 1/sum per
  // head [group].
  float* scores = scratch;
  float* rows = scores + group * n_keys;
  float* qs = rows + kAvx2KeyBlock * hd8;
  float* acc = qs + group * hd8;
  float* inv_sum = acc + group * hd8;
  for (int64_t g = 0; g < group; ++g) {
    const float* q = a.q + (t * a.n_heads + h0 + g) * hd;
    std::memset(qs + g * hd8, 0, size_t(hd8) * sizeof(float));
    std::memcpy(qs + g * hd8, q, size_t(hd) * sizeof(float));
    std::memset(acc + g * hd8, 0, size_t(hd8) * sizeof(float));
  }
  scores_pass(a, keys, kv_head, hd8, qs, rows, scores);
  for (int64_t g = 0; g < group; ++g) inv_sum[g] = softmax_row(scores + g * n_keys, n_keys);
  values_pass(a, keys, kv_head, hd8, scores, rows, acc);
  for (int64_t g = 0; g < group; ++g) {
    float* out = a.out + (t * a.n_heads + h0 + g) * hd;
    const float inv = inv_sum[g];
    for (int64_t d = 0; d < hd; ++d) out[d] = acc[g * hd8 + d] * inv;
  }
}

void store_kv_f16_avx2(const float* kv, const int32_t* slots, int64_t n_tok, int64_t row_elems,
                       uint16_t* cache) {
  for (int64_t t = 0; t < n_tok; ++t) {
    uint16_t* dst = cache + int64_t(slots[t]) * row_elems;
    const float* src = kv + t * row_elems;
    int64_t i = 0;
    for (; i + 8 <= row_elems; i += 8) {
      const __m128i h =
          _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
    }
    for (; i < row_elems; ++i) dst[i] = f32_to_f16(src[i]);
  }
}

}  // namespace dspark::cpu
