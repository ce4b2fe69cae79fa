// AVX-512 rmsnorm and silu_mul: the elementwise kernels a forward runs per token and layer.
#include "elementwise_simd.h"

#include <cmath>

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx2")
#include "avx512_math.h"

namespace dspark::cpu {

void rmsnorm_avx512(const float* x, const float* weight, int64_t n, int64_t d, float eps,
                    float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * d;
    float* yr = y + i * d;
    // Four double accumulators: the additions of one would wait on each other.
    __m512d ss[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                     _mm512_setzero_pd()};
    int64_t c = 0;
    for (; c + 32 <= d; c += 32) {
      for (int h = 0; h < 4; ++h) {
        const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(xr + c + 8 * h));
        ss[h] = _mm512_fmadd_pd(v, v, ss[h]);
      }
    }
    for (; c < d; c += 8) {
      const __mmask8 m = d - c >= 8 ? __mmask8(0xFF) : __mmask8((1u << (d - c)) - 1);
      const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, xr + c));
      ss[0] = _mm512_fmadd_pd(v, v, ss[0]);
    }
    const double sum = _mm512_reduce_add_pd(
        _mm512_add_pd(_mm512_add_pd(ss[0], ss[1]), _mm512_add_pd(ss[2], ss[3])));
    const __m512 inv =
        _mm512_set1_ps(static_cast<float>(1.0 / std::sqrt(sum / double(d) + double(eps))));
    for (c = 0; c < d; c += 16) {
      const __mmask16 m = d - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (d - c)) - 1);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + c), inv);
      _mm512_mask_storeu_ps(yr + c, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + c)));
    }
  }
}

void silu_mul_avx512(const float* gate, const float* up, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    const __m512 e = avx512::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, u));
  }
}

}  // namespace dspark::cpu
