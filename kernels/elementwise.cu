// Elementwise kernels: the SwiGLU activation and fp32 -> fp16/bf16 rounding for cuBLAS inputs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "launchers.h"

namespace dspark::cuda::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// Enough blocks to cover n once, capped: the grid-stride loops take the rest.
unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// y may alias gate or up: each element is read and written by one thread.
__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float g = gate[i];
    y[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

template <class T, class Convert>
__global__ void convert_kernel(const float* __restrict__ src, int64_t n, T* __restrict__ dst,
                               Convert convert) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dst[i] = convert(src[i]);
  }
}

struct ToHalf {
  __device__ __half operator()(float v) const { return __float2half_rn(v); }
};
struct ToBf16 {
  __device__ __nv_bfloat16 operator()(float v) const { return __float2bfloat16_rn(v); }
};

}  // namespace

cudaError_t launch_silu_mul(const float* gate, const float* up, int64_t n, float* y,
                            cudaStream_t stream) {
  silu_mul_kernel<<<grid_for(n), kThreads, 0, stream>>>(gate, up, n, y);
  return cudaGetLastError();
}

cudaError_t launch_f32_to_f16(const float* src, int64_t n, void* dst, cudaStream_t stream) {
  convert_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, n, static_cast<__half*>(dst), ToHalf{});
  return cudaGetLastError();
}

cudaError_t launch_f32_to_bf16(const float* src, int64_t n, void* dst, cudaStream_t stream) {
  convert_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, n, static_cast<__nv_bfloat16*>(dst),
                                                       ToBf16{});
  return cudaGetLastError();
}

}  // namespace dspark::cuda::kernels
