// Block-wide sums built from warp shuffles, shared by the reduction kernels.
#pragma once

#include <cuda_runtime.h>

namespace dspark::cuda::kernels {

inline constexpr int kWarpSize = 32;

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Sum of v over the block, returned to every thread. blockDim.x must be a multiple of 32 (at
// most 1024). Ends with a barrier, so it may be called again in the same kernel.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[kWarpSize];  // one per warp
  __shared__ float total;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int n_warps = blockDim.x / kWarpSize;
    float w = lane < n_warps ? partial[lane] : 0.0f;
    w = warp_sum(w);
    if (lane == 0) total = w;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();
  return result;
}

}  // namespace dspark::cuda::kernels
