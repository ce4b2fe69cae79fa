// SIMD versions of the elementwise kernels, dispatched from elementwise.cpp.
#pragma once

#include <cstdint>

namespace dspark::cpu {

void silu_mul_avx512(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n,
                     float* y /*[n]*/);

}  // namespace dspark::cpu
