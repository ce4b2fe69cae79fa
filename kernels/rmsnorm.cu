// RMS normalization: one block per row; the sum of squares is reduced with warp shuffles.
#include <cstdint>

#include "launchers.h"
#include "reduce.cuh"

namespace dspark::cuda::kernels {
namespace {

// x and y may be the same memory: every thread reads its elements in the first loop, the
// barrier inside block_sum separates that from the writes, and each element is written by the
// thread that reads it. kVec4 reads float4 (d % 4 == 0 and 16-byte aligned rows).
template <bool kVec4>
__global__ void rmsnorm_kernel(const float* x, const float* __restrict__ weight, int d, float eps,
                               float* y) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * d;
  float* yr = y + row * d;
  float sum_sq = 0.0f;
  if constexpr (kVec4) {
    const float4* x4 = reinterpret_cast<const float4*>(xr);
    for (int i = threadIdx.x; i < d / 4; i += blockDim.x) {
      const float4 v = x4[i];
      sum_sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int i = threadIdx.x; i < d; i += blockDim.x) sum_sq += xr[i] * xr[i];
  }
  sum_sq = block_sum(sum_sq);
  const float scale = 1.0f / sqrtf(sum_sq / static_cast<float>(d) + eps);
  if constexpr (kVec4) {
    const float4* x4 = reinterpret_cast<const float4*>(xr);
    const float4* w4 = reinterpret_cast<const float4*>(weight);
    float4* y4 = reinterpret_cast<float4*>(yr);
    for (int i = threadIdx.x; i < d / 4; i += blockDim.x) {
      const float4 v = x4[i];
      const float4 w = w4[i];
      y4[i] =
          make_float4(v.x * scale * w.x, v.y * scale * w.y, v.z * scale * w.z, v.w * scale * w.w);
    }
  } else {
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * scale * weight[i];
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

cudaError_t launch_rmsnorm(const float* x, const float* weight, int n, int d, float eps, float* y,
                           cudaStream_t stream) {
  const bool vec4 = d % 4 == 0 && aligned16(x) && aligned16(y) && aligned16(weight);
  // About four loads per thread, in whole warps, between one warp and 1024 threads.
  const int loads = vec4 ? d / 4 : d;
  int threads = (loads / 4 + kWarpSize - 1) / kWarpSize * kWarpSize;
  threads = threads < kWarpSize ? kWarpSize : (threads > 1024 ? 1024 : threads);
  if (vec4) {
    rmsnorm_kernel<true><<<n, threads, 0, stream>>>(x, weight, d, eps, y);
  } else {
    rmsnorm_kernel<false><<<n, threads, 0, stream>>>(x, weight, d, eps, y);
  }
  return cudaGetLastError();
}

}  // namespace dspark::cuda::kernels
