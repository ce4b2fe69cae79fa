// Kernel launchers, called by the backend's C++ side after it has checked the arguments. Each
// returns the launch's cudaError_t (cudaGetLastError after the launch).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dspark::cuda::kernels {

// Largest rotated width a RopeTable carries (as kMaxRopeDims in backend_cuda.h).
inline constexpr int kRopeMaxPairs = 256;

// Everything rope needs besides the data, prepared on the host and passed by value. Angles
// and their cos/sin are computed in double and rounded once to float, as the CPU backend does.
struct RopeTable {
  int rot_dims = 0;                     // even, <= 2 * kRopeMaxPairs
  bool neox = true;                     // pairs (i, i + rot/2) instead of (2i, 2i+1)
  double mscale = 1;                    // multiplies cos and sin (YaRN attention factor)
  double inv_freq[kRopeMaxPairs] = {};  // [rot_dims / 2] radians per position of each pair
};

cudaError_t launch_rmsnorm(const float* x /*[n, d]*/, const float* weight /*[d]*/, int n, int d,
                           float eps, float* y /*[n, d]*/, cudaStream_t stream);
cudaError_t launch_silu_mul(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n,
                            float* y /*[n]*/, cudaStream_t stream);
cudaError_t launch_rope(float* x /*[n_tok, n_heads, head_dim]*/,
                        const int32_t* positions /*[n_tok]*/, int n_tok, int n_heads, int head_dim,
                        const RopeTable& table, cudaStream_t stream);
// dst is __half / __nv_bfloat16 [n], rounded to nearest even.
cudaError_t launch_f32_to_f16(const float* src /*[n]*/, int64_t n, void* dst /*[n]*/,
                              cudaStream_t stream);
cudaError_t launch_f32_to_bf16(const float* src /*[n]*/, int64_t n, void* dst /*[n]*/,
                               cudaStream_t stream);
// sum[0] must be zero before the call; each block adds its partial sum.
cudaError_t launch_read_sweep(const float* x /*[n]*/, int64_t n, float* sum /*[1]*/,
                              cudaStream_t stream);

}  // namespace dspark::cuda::kernels
