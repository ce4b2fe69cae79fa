// AVX2 silu_mul: the gated MLP's activation, run per token and layer over d_ff values.
#include "elementwise_simd.h"

#pragma GCC target("avx2,fma,f16c")
#include "avx2_math.h"

namespace dspark::cpu {

void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = _mm256_castps_si256(avx2::lane_mask(n - i));
    const __m256 g = _mm256_maskload_ps(gate + i, m);
    const __m256 u = _mm256_maskload_ps(up + i, m);
    const __m256 e = avx2::exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(s, u));
  }
}

}  // namespace dspark::cpu
