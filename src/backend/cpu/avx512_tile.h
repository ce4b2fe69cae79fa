// Register transposes and prefetching shared by the AVX-512 matmul kernels. Include only from files
// compiled for AVX-512 (after their `#pragma GCC target`).
#pragma once

#include <immintrin.h>

#include <cstdint>

// Hot helpers of the kernels must be inlined for their vectors to stay in registers; GCC's
// heuristics give up on the larger ones.
#define DSPARK_AVX512_INLINE inline __attribute__((always_inline))

namespace dspark::cpu::avx512 {

// Row rho = 4 g + i is 128-bit lane i of z[g] (four dwords). Afterwards p[k] dword L holds dword
// k of row sigma(L) = 4 (L % 4) + L / 4 (the order this unpack sequence leaves; sigma is its
// own inverse).
DSPARK_AVX512_INLINE void transpose_4x4_lanes(const __m512i z[4], __m512i p[4]) {
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  p[0] = _mm512_unpacklo_epi64(t0, t2);
  p[1] = _mm512_unpackhi_epi64(t0, t2);
  p[2] = _mm512_unpacklo_epi64(t1, t3);
  p[3] = _mm512_unpackhi_epi64(t1, t3);
}

constexpr int sigma(int lane) {
  return 4 * (lane % 4) + lane / 4;
}

// Prefetches the `bytes` bytes that start `ahead` bytes after p (addresses past the end of the
// data are fine: a prefetch never faults).
DSPARK_AVX512_INLINE void prefetch_ahead(const void* p, int ahead, int bytes) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(p) + uintptr_t(ahead);
  for (int line = 0; line < bytes; line += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(at + uintptr_t(line)), _MM_HINT_T0);
  }
}

}  // namespace dspark::cpu::avx512
