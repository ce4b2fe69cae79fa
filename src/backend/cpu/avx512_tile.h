// Register transposes, row reductions and prefetching shared by the AVX-512 matmul kernels. Include
// only from files compiled for AVX-512 (after their `#pragma GCC target`).
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

// Lane r = the sum of the 16 lanes of v[r]. Every row's lanes are added in the same order
// (128-bit chunks (0 + 2) + (1 + 3), then floats likewise within the chunk) whatever the other
// rows hold, and the 16 rows cost about as much as three single reductions.
DSPARK_AVX512_INLINE __m512 reduce_rows_16(const __m512 v[16]) {
  __m512 c[8], e[4], g[2];
  for (int k = 0; k < 8; ++k) {  // chunks of rows 2k, 2k + 1: (0 + 2), (1 + 3)
    c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
  }
  for (int k = 0; k < 4; ++k) {  // chunk r of e[k]: four partial sums of row 4k + r
    e[k] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0xDD));
  }
  for (int k = 0; k < 2; ++k) {  // chunk j: rows 8k + j, 8k + 4 + j, two sums each
    g[k] = _mm512_add_ps(_mm512_unpacklo_ps(e[2 * k], e[2 * k + 1]),
                         _mm512_unpackhi_ps(e[2 * k], e[2 * k + 1]));
  }
  // Chunk j: rows j, 8 + j, 4 + j, 12 + j; the permute puts row r in lane r.
  const __m512 sums = _mm512_add_ps(_mm512_unpacklo_ps(g[0], g[1]), _mm512_unpackhi_ps(g[0], g[1]));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, sums);
}

// y[i * y_stride + r] = the lane sum of acc[r][i], for rows r < n_rows (at most 16) and NT
// tokens i.
template <int NT>
DSPARK_AVX512_INLINE void store_row_sums(const __m512 acc[][NT], int64_t n_rows, float* y,
                                         int64_t y_stride) {
  const __mmask16 present = __mmask16((1u << n_rows) - 1);
  for (int i = 0; i < NT; ++i) {
    __m512 rows[16];
    for (int64_t r = 0; r < 16; ++r) rows[r] = r < n_rows ? acc[r][i] : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(y + i * y_stride, present, reduce_rows_16(rows));
  }
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
