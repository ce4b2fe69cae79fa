// AVX-512 rotation for rope(): the scalar loop's products and sums, 16 lanes at a time, so the
// results are bit-identical to it (no fused multiply-adds).
#include "rope_simd.h"

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2")
// GCC would otherwise fuse a product and a sum into one rounding, which the scalar loop (built
// for baseline x86-64) cannot.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

namespace dspark::cpu {
namespace {

__mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// Pairs (2j, 2j+1): lane 2j gets x0 c - x1 s, lane 2j+1 gets x1 c + x0 s, with c and s of pair
// j repeated over both lanes and s negated in the even ones.
void rotate_interleaved(float* v /*[2 half]*/, const float* c, const float* s, int64_t half) {
  const __m512i twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m512 even_sign = _mm512_castsi512_ps(_mm512_set_epi32(
      0, int(0x80000000), 0, int(0x80000000), 0, int(0x80000000), 0, int(0x80000000), 0,
      int(0x80000000), 0, int(0x80000000), 0, int(0x80000000), 0, int(0x80000000)));
  for (int64_t j = 0; j < half; j += 8) {
    const __mmask16 m = lanes(2 * (half - j));
    const __mmask8 m8 = __mmask8(lanes(half - j));
    const __m512 c2 =
        _mm512_permutexvar_ps(twice, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, c + j)));
    const __m512 s2 =
        _mm512_permutexvar_ps(twice, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, s + j)));
    const __m512 x = _mm512_maskz_loadu_ps(m, v + 2 * j);
    const __m512 swapped = _mm512_permute_ps(x, 0xB1);
    const __m512 y =
        _mm512_add_ps(_mm512_mul_ps(x, c2), _mm512_mul_ps(swapped, _mm512_xor_ps(s2, even_sign)));
    _mm512_mask_storeu_ps(v + 2 * j, m, y);
  }
}

// Halves (j, j + half): a c - b s and a s + b c.
void rotate_neox(float* v /*[2 half]*/, const float* c, const float* s, int64_t half) {
  for (int64_t j = 0; j < half; j += 16) {
    const __mmask16 m = lanes(half - j);
    const __m512 a = _mm512_maskz_loadu_ps(m, v + j), b = _mm512_maskz_loadu_ps(m, v + half + j);
    const __m512 cj = _mm512_maskz_loadu_ps(m, c + j), sj = _mm512_maskz_loadu_ps(m, s + j);
    _mm512_mask_storeu_ps(v + j, m, _mm512_sub_ps(_mm512_mul_ps(a, cj), _mm512_mul_ps(b, sj)));
    _mm512_mask_storeu_ps(v + half + j, m,
                          _mm512_add_ps(_mm512_mul_ps(a, sj), _mm512_mul_ps(b, cj)));
  }
}

}  // namespace

void rope_rotate_avx512(float* x, const float* cos, const float* sin, int64_t n_tok,
                        int64_t n_heads, int64_t head_dim, int64_t half, RopeLayout layout) {
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (i * n_heads + h) * head_dim;
      if (layout == RopeLayout::Interleaved) {
        rotate_interleaved(v, cos + i * half, sin + i * half, half);
      } else {
        rotate_neox(v, cos + i * half, sin + i * half, half);
      }
    }
  }
}

}  // namespace dspark::cpu
