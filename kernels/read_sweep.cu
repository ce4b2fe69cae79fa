// Streaming read kernel for bandwidth measurement: every element is loaded once (float4 loads
// where aligned) and folded into a sum, so the loads cannot be optimized away.
#include <cstdint>

#include "launchers.h"
#include "reduce.cuh"

namespace dspark::cuda::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int64_t kMaxBlocks = 8192;

__global__ void read_sweep_kernel(const float* __restrict__ x, int64_t n, bool vec4,
                                  float* __restrict__ sum) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float acc = 0.0f;
  int64_t scalar_from = 0;
  if (vec4) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      const float4 v = x4[i];
      acc += (v.x + v.y) + (v.z + v.w);
    }
    scalar_from = n4 * 4;
  }
  for (int64_t i = scalar_from + first; i < n; i += stride) acc += x[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(sum, acc);
}

}  // namespace

cudaError_t launch_read_sweep(const float* x, int64_t n, float* sum, cudaStream_t stream) {
  const bool vec4 = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  const int64_t per_block = static_cast<int64_t>(kThreads) * (vec4 ? 4 : 1);
  int64_t blocks = (n + per_block - 1) / per_block;
  blocks = blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks);
  read_sweep_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, n, vec4, sum);
  return cudaGetLastError();
}

}  // namespace dspark::cuda::kernels
