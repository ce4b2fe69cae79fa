// AVX-512 VNNI kernels for the K-quants (Q4_K, Q5_K, Q6_K) against 256-value activation groups.
//
// A super-block's 256 weights are unpacked to unsigned bytes in four registers and transposed
// once per row so that each int32 lane covers 16 values of a single 16-value group in all four
// registers: per token, four chained vpdpbusd then give each group's dot product in its own
// lane, and the sub-block scales follow: Q6_K's by one integer multiply, Q4_K / Q5_K's (with
// their mins) as floats multiplied by d and dmin once per block, so a token pays no integer
// multiply. The activations are quantized into the same lane order (see the lane maps below),
// with one sum per 16 values for the mins (Q4_K / Q5_K) and the -32 offset (Q6_K).
#include <cstdint>
#include <cstring>

#include "kernels_avx512.h"

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")
#include "avx512_tile.h"

namespace dspark::cpu {
namespace {

// Lane L of the transposed registers holds 16-value group kGroupOfLane[L] of the super-block.
// Unpacked Q4_K / Q5_K registers hold sub-blocks (0,2), (1,3), (4,6), (5,7), so their 128-bit
// lanes are groups {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}; Q6_K's are in order.
constexpr int kQ45Rows[16] = {0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15};
constexpr int group_of_lane_q45(int lane) {
  return kQ45Rows[avx512::sigma(lane)];
}
constexpr int group_of_lane_q6(int lane) {
  return avx512::sigma(lane);
}

DSPARK_AVX512_INLINE float fp16(uint16_t h) {
  return _cvtsh_ss(h);
}

struct SuperTile {
  __m512i w[4];    // w[n] lane L: values 4n..4n+3 of the lane's group, unsigned bytes
  __m512 dsc;      // Q4_K / Q5_K: lane L: d times the scale of the lane's group
  __m512 dmins;    // Q4_K / Q5_K: lane L: -dmin times the min of the lane's group
  __m512i sc;      // Q6_K: lane L: scale of the lane's group
  float d = 0.0f;  // Q6_K
};

template <int (*GroupOfLane)(int)>
DSPARK_AVX512_INLINE __m512i lane_index(int offset, int divisor) {
  alignas(64) int32_t idx[16];
  for (int lane = 0; lane < 16; ++lane) idx[lane] = offset + GroupOfLane(lane) / divisor;
  return _mm512_load_si512(idx);
}

// The 6-bit scales and mins of a Q4_K / Q5_K block, one per lane, times d and -dmin.
DSPARK_AVX512_INLINE void kquant_scales(const uint8_t* packed /*[12]*/, float d, float dmin,
                                        SuperTile& t) {
  uint32_t s[3];
  std::memcpy(s, packed, 12);
  const uint32_t sc_lo = s[0] & 0x3F3F3F3F, m_lo = s[1] & 0x3F3F3F3F;
  const uint32_t sc_hi = (s[2] & 0x0F0F0F0F) | ((s[0] >> 6) & 0x03030303) << 4;
  const uint32_t m_hi = ((s[2] >> 4) & 0x0F0F0F0F) | ((s[1] >> 6) & 0x03030303) << 4;
  // lanes 0..7: scales of sub-blocks 0..7; lanes 8..15: their mins
  const __m512i v =
      _mm512_cvtepu8_epi32(_mm_set_epi32(int(m_hi), int(m_lo), int(sc_hi), int(sc_lo)));
  t.dsc = _mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_permutexvar_epi32(
                                               lane_index<group_of_lane_q45>(0, 2), v)));
  t.dmins = _mm512_mul_ps(_mm512_set1_ps(-dmin), _mm512_cvtepi32_ps(_mm512_permutexvar_epi32(
                                                     lane_index<group_of_lane_q45>(8, 2), v)));
}

DSPARK_AVX512_INLINE void nibbles(const uint8_t* qs /*[128]*/, __m512i u[4]) {
  const __m512i low = _mm512_set1_epi8(0x0F);
  const __m512i q0 = _mm512_loadu_si512(qs), q1 = _mm512_loadu_si512(qs + 64);
  u[0] = _mm512_and_si512(q0, low);
  u[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), low);
  u[2] = _mm512_and_si512(q1, low);
  u[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), low);
}

DSPARK_AVX512_INLINE void load_q4k(const BlockQ4_K& b, SuperTile& t) {
  __m512i u[4];
  nibbles(b.qs, u);
  avx512::transpose_4x4_lanes(u, t.w);
  kquant_scales(b.scales, fp16(b.d), fp16(b.dmin), t);
}

DSPARK_AVX512_INLINE void load_q5k(const BlockQ5_K& b, SuperTile& t) {
  __m512i u[4];
  nibbles(b.qs, u);
  // Fifth bit of value l of sub-block j is bit j of qh[l]; u[n] halves hold sub-blocks
  // (0,2), (1,3), (4,6), (5,7).
  const __m512i qh =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh)));
  const __m512i sixteen = _mm512_set1_epi8(16);
  constexpr int kSub[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
  for (int n = 0; n < 4; ++n) {
    const __m512i bits = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << kSub[n][0])),
                                            _mm256_set1_epi8(char(1 << kSub[n][1])), 1);
    u[n] = _mm512_mask_add_epi8(u[n], _mm512_test_epi8_mask(qh, bits), u[n], sixteen);
  }
  avx512::transpose_4x4_lanes(u, t.w);
  kquant_scales(b.scales, fp16(b.d), fp16(b.dmin), t);
}

DSPARK_AVX512_INLINE void load_q6k(const BlockQ6_K& b, SuperTile& t) {
  const __m512i low = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x03);
  // Values 0..63 of each half take qh bits 0-1 (first 32) and 2-3; values 64..127 bits 4-7.
  const __m512i sh_a = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sh_b = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  __m512i u[4];
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
    const __m512i qh =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
    const __m512i hi_a = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_a), two), 4);
    const __m512i hi_b = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_b), two), 4);
    u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low), hi_a);
    u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low), hi_b);
  }
  avx512::transpose_4x4_lanes(u, t.w);
  const __m512i v =
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  t.sc = _mm512_permutexvar_epi32(lane_index<group_of_lane_q6>(0, 1), v);
  t.d = fp16(b.d);
}

// Per-lane integer dot products of one super-block with one token's 256 activations.
template <int NT>
DSPARK_AVX512_INLINE __m512i group_dots(const SuperTile& t, const int8_t* a) {
  const __m512i z = _mm512_setzero_si512();
  if constexpr (NT == 1) {  // a single token: two shorter chains
    const __m512i e = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, t.w[0], _mm512_load_si512(a)),
                                          t.w[2], _mm512_load_si512(a + 128));
    const __m512i o = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, t.w[1], _mm512_load_si512(a + 64)),
                                          t.w[3], _mm512_load_si512(a + 192));
    return _mm512_add_epi32(e, o);
  } else {
    __m512i s = _mm512_dpbusd_epi32(z, t.w[0], _mm512_load_si512(a));
    for (int n = 1; n < 4; ++n) s = _mm512_dpbusd_epi32(s, t.w[n], _mm512_load_si512(a + 64 * n));
    return s;
  }
}

// Q4_K / Q5_K: d * sum(scale * q * a) - dmin * sum(min * a), times the activation scale.
template <int NT>
DSPARK_AVX512_INLINE __m512 token_q45k(const SuperTile& t, const int8_t* a, float da,
                                       const int32_t* sums, __m512 acc) {
  const __m512 vda = _mm512_set1_ps(da);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(group_dots<NT>(t, a)), _mm512_mul_ps(t.dsc, vda), acc);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums)), _mm512_mul_ps(t.dmins, vda),
                         acc);
}

// Q6_K: d * sum(scale * (q - 32) * a), the offset through the 16-value activation sums.
template <int NT>
DSPARK_AVX512_INLINE __m512 token_q6k(const SuperTile& t, const int8_t* a, float da,
                                      const int32_t* sums, __m512 acc) {
  const __m512i dots =
      _mm512_sub_epi32(group_dots<NT>(t, a), _mm512_slli_epi32(_mm512_load_si512(sums), 5));
  const __m512i isum = _mm512_mullo_epi32(dots, t.sc);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(t.d * da), acc);
}

// Rows [r0, r1) (at most kMaxRows) for NT tokens from t0. With several tokens, columns go in
// chunks of kChunkBlocks super-blocks whose activations (at most 8 tokens x 4096 bytes) stay in
// L1 while every row of the block passes over them. Accumulators wait in memory between
// chunks, which leaves each (row, token) sequence of operations unchanged.
constexpr int64_t kMaxRows = 16;
constexpr int64_t kChunkBlocks = 16;
constexpr int kPrefetchBytes = 8192;  // how far ahead of the current block to prefetch

template <class Block, void (*Load)(const Block&, SuperTile&), template <int> class Token, int NT>
void block_tokens(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0) {
  const int64_t nb = args.cols / kQKK;
  const QuantizedActs& acts = args.acts;
  __m512 saved[kMaxRows][NT];
  for (int64_t r = 0; r < r1 - r0; ++r) {
    for (int i = 0; i < NT; ++i) saved[r][i] = _mm512_setzero_ps();
  }
  SuperTile tile;
  const int64_t chunk = NT == 1 ? nb : kChunkBlocks;
  for (int64_t c0 = 0; c0 < nb; c0 += chunk) {
    const int64_t c1 = c0 + chunk < nb ? c0 + chunk : nb;
    for (int64_t r = r0; r < r1; ++r) {
      const auto* blocks = reinterpret_cast<const Block*>(args.w + r * args.row_bytes);
      __m512 acc[NT];
#pragma GCC unroll 8
      for (int i = 0; i < NT; ++i) acc[i] = saved[r - r0][i];
      for (int64_t b = c0; b < c1; ++b) {
        // Weights stream from memory: ask for the lines a few blocks ahead (the hardware
        // prefetcher restarts on every short row range a task covers).
        avx512::prefetch_ahead(blocks + b, kPrefetchBytes, int(sizeof(Block)));
        Load(blocks[b], tile);
#pragma GCC unroll 8
        for (int i = 0; i < NT; ++i) {
          acc[i] = Token<NT>::step(tile, acts.qs_row(t0 + i) + b * kQKK, acts.d_row(t0 + i)[b],
                                   acts.sums_row(t0 + i) + b * 16, acc[i]);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < NT; ++i) saved[r - r0][i] = acc[i];
    }
  }
  avx512::store_row_sums<NT>(saved, r1 - r0, args.y + t0 * args.y_stride + r0, args.y_stride);
}

template <int NT>
struct TokenQ45 {
  DSPARK_AVX512_INLINE static __m512 step(const SuperTile& t, const int8_t* a, float da,
                                          const int32_t* s, __m512 acc) {
    return token_q45k<NT>(t, a, da, s, acc);
  }
};
template <int NT>
struct TokenQ6 {
  DSPARK_AVX512_INLINE static __m512 step(const SuperTile& t, const int8_t* a, float da,
                                          const int32_t* s, __m512 acc) {
    return token_q6k<NT>(t, a, da, s, acc);
  }
};

template <class Block, void (*Load)(const Block&, SuperTile&), template <int> class Token>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t rb = r0; rb < r1; rb += kMaxRows) {
    const int64_t re = rb + kMaxRows < r1 ? rb + kMaxRows : r1;
    for (int64_t t = t0; t < t1; t += 8) {
      switch (t1 - t >= 8 ? 8 : int(t1 - t)) {
        case 1:
          block_tokens<Block, Load, Token, 1>(args, rb, re, t);
          break;
        case 2:
          block_tokens<Block, Load, Token, 2>(args, rb, re, t);
          break;
        case 3:
          block_tokens<Block, Load, Token, 3>(args, rb, re, t);
          break;
        case 4:
          block_tokens<Block, Load, Token, 4>(args, rb, re, t);
          break;
        case 5:
          block_tokens<Block, Load, Token, 5>(args, rb, re, t);
          break;
        case 6:
          block_tokens<Block, Load, Token, 6>(args, rb, re, t);
          break;
        case 7:
          block_tokens<Block, Load, Token, 7>(args, rb, re, t);
          break;
        default:
          block_tokens<Block, Load, Token, 8>(args, rb, re, t);
          break;
      }
    }
  }
}

// 256-value activation groups in the kernels' lane order: byte 64 n + 4 L + j of a super-block
// is value 4 n + j of 16-value group GroupOfLane(L); the 16 sums follow the lanes too. Values
// and scales equal the natural-order quantizer's.
template <int (*GroupOfLane)(int)>
void quantize_lanes(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < cols / kQKK; ++b) {
    const float* xb = x + b * kQKK;
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < 16; ++i) {
      m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(xb + 16 * i)));
    }
    const float amax = _mm512_reduce_max_ps(m);
    const __m512 vid = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    d[b] = amax / 127.0f;
    for (int lane = 0; lane < 16; ++lane) {
      const int g = GroupOfLane(lane);
      const __m512i q = _mm512_min_epi32(
          _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * g), vid)),
                           lo),
          hi);
      alignas(16) int8_t bytes[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(bytes), _mm512_cvtepi32_epi8(q));
      for (int n = 0; n < 4; ++n) std::memcpy(qs + b * kQKK + 64 * n + 4 * lane, bytes + 4 * n, 4);
      sums[b * 16 + lane] = _mm512_reduce_add_epi32(q);
    }
  }
}

ActLengths lengths_q8_256(int64_t cols) {
  return {cols, cols / kQKK, cols / 16};
}

}  // namespace

MatmulKernel avx512_q4_k() {
  return {rows<BlockQ4_K, load_q4k, TokenQ45>, {quantize_lanes<group_of_lane_q45>, lengths_q8_256}};
}
MatmulKernel avx512_q5_k() {
  return {rows<BlockQ5_K, load_q5k, TokenQ45>, {quantize_lanes<group_of_lane_q45>, lengths_q8_256}};
}
MatmulKernel avx512_q6_k() {
  return {rows<BlockQ6_K, load_q6k, TokenQ6>, {quantize_lanes<group_of_lane_q6>, lengths_q8_256}};
}

}  // namespace dspark::cpu
