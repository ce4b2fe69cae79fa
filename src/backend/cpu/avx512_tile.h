// Transposing loads, token-count dispatch and prefetching shared by the AVX-512 matmul kernels.
// Include only from files compiled for AVX-512 (after their `#pragma GCC target`).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

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

// 16 bytes at p, or zeros for a row past the matrix's end.
template <bool kTail>
DSPARK_AVX512_INLINE __m128i load16(const uint8_t* p, bool valid) {
  if (kTail && !valid) return _mm_setzero_si128();
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// z[g] 128-bit lane i = the 16 bytes at `at + row * stride` for row 4 i + g (zero for rows from
// `count` on). Chunk c = 4 g + i thus holds row sigma(c), so after the 4x4 transpose (which
// leaves chunk sigma(L) in lane L) lane L holds row L.
template <bool kTail>
DSPARK_AVX512_INLINE void load_rows(const uint8_t* at, uint64_t stride, int count, __m512i z[4]) {
  for (int g = 0; g < 4; ++g) {
    const uint8_t* p = at + uint64_t(g) * stride;
    __m512i v = _mm512_castsi128_si512(load16<kTail>(p, g < count));
    v = _mm512_inserti32x4(v, load16<kTail>(p + 4 * stride, g + 4 < count), 1);
    v = _mm512_inserti32x4(v, load16<kTail>(p + 8 * stride, g + 8 < count), 2);
    z[g] = _mm512_inserti32x4(v, load16<kTail>(p + 12 * stride, g + 12 < count), 3);
  }
}

// p[k] lane L = dword k of the 16 bytes at `at + L * stride`.
template <bool kTail>
DSPARK_AVX512_INLINE void load_transposed(const uint8_t* at, uint64_t stride, int count,
                                          __m512i p[4]) {
  __m512i z[4];
  load_rows<kTail>(at, stride, count, z);
  transpose_4x4_lanes(z, p);
}

// Lane L = the dword at `at + L * stride`: the first output of the transpose only.
template <bool kTail>
DSPARK_AVX512_INLINE __m512i load_dwords(const uint8_t* at, uint64_t stride, int count) {
  __m512i z[4];
  load_rows<kTail>(at, stride, count, z);
  return _mm512_unpacklo_epi64(_mm512_unpacklo_epi32(z[0], z[1]),
                               _mm512_unpacklo_epi32(z[2], z[3]));
}

// fn(std::integral_constant<int, NT>{}) for NT = n (1..8): the kernels' token count as a
// template argument, so that their per-token loops unroll and their accumulators stay in
// registers.
template <class Fn>
DSPARK_AVX512_INLINE void with_token_count(int64_t n, Fn&& fn) {
  switch (n) {
    case 1:
      fn(std::integral_constant<int, 1>{});
      break;
    case 2:
      fn(std::integral_constant<int, 2>{});
      break;
    case 3:
      fn(std::integral_constant<int, 3>{});
      break;
    case 4:
      fn(std::integral_constant<int, 4>{});
      break;
    case 5:
      fn(std::integral_constant<int, 5>{});
      break;
    case 6:
      fn(std::integral_constant<int, 6>{});
      break;
    case 7:
      fn(std::integral_constant<int, 7>{});
      break;
    default:
      fn(std::integral_constant<int, 8>{});
      break;
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
