// SIMD rotation of rope(), dispatched from rope.cpp.
#pragma once

#include <cstdint>

#include "dspark/backend_cpu.h"

namespace dspark::cpu {

// Rotates the first 2 half dims of every head of x by its token's cos/sin.
void rope_rotate_avx512(float* x /*[n_tok, n_heads, head_dim]*/, const float* cos /*[n_tok, half]*/,
                        const float* sin /*[n_tok, half]*/, int64_t n_tok, int64_t n_heads,
                        int64_t head_dim, int64_t half, RopeLayout layout);

}  // namespace dspark::cpu
