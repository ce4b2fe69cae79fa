// Row-wise and elementwise kernels: rmsnorm, silu_mul, add_inplace, argmax. Each output element
// depends only on its own row, in a fixed order, so they are batch-invariant by construction.
#include <cmath>

#include "dspark/backend_cpu.h"
#include "elementwise_simd.h"

namespace dspark::cpu {

void rmsnorm(const float* x, const float* weight, int64_t n, int64_t d, float eps, float* y) {
  profile::Scope timing("rmsnorm");
  if (active_isa() == Isa::Avx512) {
    rmsnorm_avx512(x, weight, n, d, eps, y);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * d;
    float* yr = y + i * d;
    // Sum of squares in double: d is small and this keeps the norm exact to float precision.
    double ss = 0.0;
    for (int64_t c = 0; c < d; ++c) ss += double(xr[c]) * double(xr[c]);
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(d) + double(eps)));
    for (int64_t c = 0; c < d; ++c) yr[c] = xr[c] * inv * weight[c];
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* y) {
  if (active_isa() == Isa::Avx512) {
    silu_mul_avx512(gate, up, n, y);
    return;
  }
  if (active_isa() == Isa::Avx2) {
    silu_mul_avx2(gate, up, n, y);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    y[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  profile::Scope timing("add");
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

}  // namespace dspark::cpu
