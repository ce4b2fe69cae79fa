// AVX2 attention (F16C conversions, 8-wide FMA) and the fp16 K/V store, for CPUs without
// AVX-512. attend_group: the whole key list of one token for the query heads of a kv head, two
// passes (scores, then softmax-weighted V) as the scalar kernel does. Per head the operation
// order is fixed by its own key list, so results depend neither on the group, the batch nor the
// thread count.
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

// Scores of every key for each query head of the group: s[g, j] = scale * q_g . k_j.
void scores_pass(const AttentionArgs& a, int64_t t, int64_t kv_head, int64_t hd8,
                 const float* qs /*[group, hd8]*/, float* kv /*[hd8]*/,
                 float* scores /*[group, n_keys]*/) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t k0 = a.key_offsets[t], n_keys = a.key_offsets[t + 1] - k0;
  const int64_t row = a.n_kv_heads * a.head_dim;
  for (int64_t j = 0; j < n_keys; ++j) {
    convert_row(a.k_cache + a.key_slots[k0 + j] * row + kv_head * a.head_dim, a.head_dim, kv);
    for (int64_t g = 0; g < group; ++g) {
      __m256 s = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd8; d += 8) {
        s = _mm256_fmadd_ps(_mm256_loadu_ps(qs + g * hd8 + d), _mm256_loadu_ps(kv + d), s);
      }
      scores[g * n_keys + j] = avx2::hsum_ps(s) * a.scale;
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

void attend_group_avx2(const AttentionArgs& a, int64_t t, int64_t kv_head, float* scratch) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t hd = a.head_dim;
  const int64_t hd8 = (hd + 7) / 8 * 8;
  const int64_t k0 = a.key_offsets[t];
  const int64_t n_keys = a.key_offsets[t + 1] > k0 ? a.key_offsets[t + 1] - k0 : 0;
  const int64_t row = a.n_kv_heads * hd;
  const int64_t h0 = kv_head * group;
  // scratch (attend_scratch_floats): [group, n_keys] scores, one converted K/V row [hd8], the
  // group's queries and accumulators [group, hd8] each, and 1/sum per head [group].
  float* scores = scratch;
  float* kv = scores + group * n_keys;
  float* qs = kv + hd8;
  float* acc = qs + group * hd8;
  float* inv_sum = acc + group * hd8;
  for (int64_t g = 0; g < group; ++g) {
    const float* q = a.q + (t * a.n_heads + h0 + g) * hd;
    std::memset(qs + g * hd8, 0, size_t(hd8) * sizeof(float));
    std::memcpy(qs + g * hd8, q, size_t(hd) * sizeof(float));
    std::memset(acc + g * hd8, 0, size_t(hd8) * sizeof(float));
  }
  scores_pass(a, t, kv_head, hd8, qs, kv, scores);
  for (int64_t g = 0; g < group; ++g) inv_sum[g] = softmax_row(scores + g * n_keys, n_keys);
  for (int64_t j = 0; j < n_keys; ++j) {
    convert_row(a.v_cache + a.key_slots[k0 + j] * row + kv_head * hd, hd, kv);
    for (int64_t g = 0; g < group; ++g) {
      const __m256 p = _mm256_set1_ps(scores[g * n_keys + j]);
      float* o = acc + g * hd8;
      for (int64_t d = 0; d < hd8; d += 8) {
        _mm256_storeu_ps(o + d,
                         _mm256_fmadd_ps(p, _mm256_loadu_ps(kv + d), _mm256_loadu_ps(o + d)));
      }
    }
  }
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
