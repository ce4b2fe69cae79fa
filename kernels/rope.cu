// Rotary position embedding: one thread per (token, head, rotated pair). Frequencies come
// precomputed from the host in the RopeTable.
#include <cstdint>

#include "launchers.h"

namespace dspark::cuda::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void rope_kernel(float* x, const int32_t* __restrict__ positions, int64_t n_items,
                            int n_heads, int head_dim, const __grid_constant__ RopeTable table) {
  const int pairs = table.rot_dims / 2;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= n_items) return;
  const int pair = static_cast<int>(item % pairs);
  const int64_t head_row = item / pairs;  // token * n_heads + head
  const int64_t token = head_row / n_heads;
  float* head = x + head_row * head_dim;
  const int a = table.neox ? pair : 2 * pair;
  const int b = table.neox ? pair + pairs : 2 * pair + 1;
  // Double precision keeps large positions exact enough to match the CPU backend; rope moves
  // little data, so the FP64 cost does not matter.
  const double angle = static_cast<double>(positions[token]) * table.inv_freq[pair];
  double sin_d, cos_d;
  sincos(angle, &sin_d, &cos_d);
  const float cos_v = static_cast<float>(cos_d * table.mscale);
  const float sin_v = static_cast<float>(sin_d * table.mscale);
  const float xa = head[a];
  const float xb = head[b];
  head[a] = xa * cos_v - xb * sin_v;
  head[b] = xa * sin_v + xb * cos_v;
}

}  // namespace

cudaError_t launch_rope(float* x, const int32_t* positions, int n_tok, int n_heads, int head_dim,
                        const RopeTable& table, cudaStream_t stream) {
  const int64_t n_items = static_cast<int64_t>(n_tok) * n_heads * (table.rot_dims / 2);
  const int64_t blocks = (n_items + kThreads - 1) / kThreads;
  rope_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, positions, n_items,
                                                                      n_heads, head_dim, table);
  return cudaGetLastError();
}

}  // namespace dspark::cuda::kernels
