// SIMD versions of the elementwise kernels, dispatched from elementwise.cpp.
#pragma once

#include <cstdint>

namespace dspark::cpu {

// rmsnorm with the sum of squares in double over eight lanes (then the lanes in a fixed order).
void rmsnorm_avx512(const float* x /*[n, d]*/, const float* weight /*[d]*/, int64_t n, int64_t d,
                    float eps, float* y /*[n, d]*/);
void silu_mul_avx2(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n, float* y /*[n]*/);
void silu_mul_avx512(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n,
                     float* y /*[n]*/);

}  // namespace dspark::cpu
