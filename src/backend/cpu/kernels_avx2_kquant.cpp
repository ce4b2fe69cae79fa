// AVX2 + FMA + F16C kernels for the K-quants (Q4_K, Q5_K, Q6_K) over the packed 16-row tiles of
// packed_kquant.h, for CPUs without AVX-512 VNNI.
//
// A tile is read as two halves of 8 rows: a 256-bit load of dword k of a field puts row L's 4
// bytes in int32 lane L, so each row's dot product lands in its own lane, with no transposes and
// no horizontal sums. A 32-value sub-block (Q4_K, Q5_K) or 16-value group (Q6_K) of the 8 rows
// is unpacked to unsigned bytes one dword vector at a time; against a token's 4 activations
// broadcast to every lane, vpmaddubsw leaves each row's two pair sums in its lane, which add up
// in int16 and reach int32 through one vpmaddwd with the rows' scales as int16 pairs: the scale
// multiply is free. The unpacking is paid once per half tile for up to kMaxTokens tokens.
// Rows in the file's layout (no packed copy, or the last rows short of 16) are first staged
// into the same tile bytes on the stack (zeros past the last row), so every path computes from
// the same bytes and gives the same results.
//
// int16 bounds (vpmaddubsw saturates at 32767, |a| <= 127):
//   Q4_K q <= 15: a pair sum is at most 2 * 15 * 127 = 3810; 8 of them 30480: a sub-block.
//   Q5_K q <= 31: a pair sum is at most 7874; 4 of them 31496: half a sub-block.
//   Q6_K q <= 63: a pair sum is at most 16002; 2 of them 32004: half a 16-value group.
//
// The integer part is exact, and the float step per super-block and token (d, dmin, the
// activation scale) is the same instruction sequence as the AVX-512 kernels'
// (kernels_avx512_kquant.cpp), so both ISAs give the same bits, and every token the same
// sequence whatever the batch. Activations are in the tile kernels' pairing (kernels.h).
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels.h"
#include "packed_kquant.h"

#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include "avx2_math.h"

// The per-block helpers must inline for their vectors to stay in registers.
#define DSPARK_AVX2_INLINE inline __attribute__((always_inline))

namespace dspark::cpu {
namespace {

using packed::Q4K;
using packed::Q5K;
using packed::Q6K;

constexpr int kGroupRows = packed::kRows;  // rows per tile
constexpr int kHalfRows = 8;               // rows per half tile: one per int32 lane
constexpr int kMaxTokens = 4;              // tokens per pass over a half (register budget)
constexpr int kPrefetchBytes = 4096;       // how far ahead packed tiles are prefetched

using avx2::broadcast_dword;
using avx2::load256;

// 8 fp16 values at p as floats.
DSPARK_AVX2_INLINE __m256 load_halves(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Half h's part of dword c of a dword field at `field`: rows 8h..8h+7.
DSPARK_AVX2_INLINE __m256i half_dword(const uint8_t* field, int c, int h) {
  return load256(field + 4 * (kGroupRows * c + kHalfRows * h));
}

// Half h's part of a 16-row fp16 field as floats.
DSPARK_AVX2_INLINE __m256 half_halves(const uint8_t* field, int h) {
  return load_halves(field + 2 * kHalfRows * h);
}

// acc += pair sums of w x a (int16; callers keep within the bounds above). Saturating adds that
// never saturate: unlike plain adds, GCC does not reassociate them into trees of partial sums
// that spill registers.
DSPARK_AVX2_INLINE __m256i add_pairs(__m256i acc, __m256i w, const int8_t* a) {
  return _mm256_adds_epi16(acc, _mm256_maddubs_epi16(w, broadcast_dword(a)));
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32 values, six-bit scales and mins ----

// Lane L bytes 0..3: the six-bit scales (sel 0) or mins (sel 1) of sub-blocks 4 hi .. 4 hi + 3
// of row 8h + L. The low sub-blocks keep them in the low six bits of dword sel; the high ones
// take four bits from dword 2 (low nibbles: scales, high: mins) and two from bits 6-7 of
// dword sel.
DSPARK_AVX2_INLINE __m256i six_bit(const uint8_t* scales /* tile field */, int h, int sel, int hi) {
  const __m256i s = half_dword(scales, sel, h);
  if (hi == 0) return _mm256_and_si256(s, _mm256_set1_epi8(0x3F));
  __m256i s2 = half_dword(scales, 2, h);
  if (sel == 1) s2 = _mm256_srli_epi32(s2, 4);
  return _mm256_or_si256(_mm256_and_si256(s2, _mm256_set1_epi8(0x0F)),
                         _mm256_and_si256(_mm256_srli_epi32(s, 2), _mm256_set1_epi8(0x30)));
}

// Dword k of a sub-block of the half: lane L = values 4k..4k+3 of row 8h + L, unsigned.
// Sub-blocks 2p and 2p + 1 are the low (kHigh false) and high nibbles of qs bytes 32p..32p+31
// (`qs`: the half's dword 8p); Q5_K's fifth bit of value l of sub-block j is bit j of qh byte l
// (so of qh dword k for these values), moved to bit 4 by a 16-bit shift of `fifth` (4 - j
// left, or j - 4 right; the mask drops what crossed bytes).
template <class P, bool kHigh>
DSPARK_AVX2_INLINE __m256i sub_block_dword(const uint8_t* qs, const uint8_t* qh, int k, int j,
                                           __m128i fifth) {
  const __m256i q = load256(qs + 64 * k);
  __m256i w = _mm256_and_si256(kHigh ? _mm256_srli_epi16(q, 4) : q, _mm256_set1_epi8(0x0F));
  if constexpr (std::is_same_v<P, Q5K>) {
    const __m256i bits = load256(qh + 64 * k);
    const __m256i moved = j <= 4 ? _mm256_sll_epi16(bits, fifth) : _mm256_srl_epi16(bits, fifth);
    w = _mm256_or_si256(w, _mm256_and_si256(moved, _mm256_set1_epi8(0x10)));
  }
  return w;
}

// isum[i] += scale x (sub-block j of the half . token i's values), sc the scales as int16
// pairs; a[i] points at token i's values of the sub-block.
template <class P, bool kHigh, int NT>
DSPARK_AVX2_INLINE void sub_block(const uint8_t* qs, const uint8_t* qh, int j, __m256i sc,
                                  const int8_t* const a[NT], __m256i isum[NT]) {
  // Q5_K's pair sums reach int32 every 4 dwords, Q4_K's once per sub-block.
  constexpr int kFold = std::is_same_v<P, Q5K> ? 4 : 8;
  const __m128i fifth = _mm_cvtsi32_si128(j <= 4 ? 4 - j : j - 4);
#pragma GCC unroll 2
  for (int k0 = 0; k0 < 8; k0 += kFold) {
    __m256i p[NT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) p[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = k0; k < k0 + kFold; ++k) {
      const __m256i w = sub_block_dword<P, kHigh>(qs, qh, k, j, fifth);
#pragma GCC unroll 8
      for (int i = 0; i < NT; ++i) p[i] = add_pairs(p[i], w, a[i] + 4 * k);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p[i], sc));
  }
}

// The scale of sub-block j as an int16 pair in each lane, from `scales` (six_bit's bytes):
// byte j % 4 of the lane's dword, twice, zero-extended (vpshufb indexes bytes within each
// 128-bit lane).
DSPARK_AVX2_INLINE __m256i scale_pairs(__m256i scales, int j) {
  const __m256i pick = _mm256_add_epi32(
      _mm256_setr_epi32(int(0x80008000), int(0x80048004), int(0x80088008), int(0x800C800C),
                        int(0x80008000), int(0x80048004), int(0x80088008), int(0x800C800C)),
      _mm256_set1_epi32((j % 4) * 0x10001));
  return _mm256_shuffle_epi8(scales, pick);
}

// NT tokens over half h of one tile: acc[i] lane L += row 8h + L's dot product with token
// t0 + i's values of super-block b.
template <class P, int NT>
DSPARK_AVX2_INLINE void half_q45(const uint8_t* tile, int h, const QuantizedActs& acts, int64_t t0,
                                 int64_t b, __m256 acc[NT]) {
  const int8_t* a[NT];
  __m256i isum[NT];  // lane L: sum over sub-blocks of scale * (q . a)
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    a[i] = acts.qs_row(t0 + i) + b * kQKK;
    isum[i] = _mm256_setzero_si256();
  }
  const uint8_t* qs = tile + P::kQs + 32 * h;
  const uint8_t* qh = std::is_same_v<P, Q5K> ? tile + Q5K::kQh + 32 * h : nullptr;
  for (int pair = 0; pair < 4; ++pair) {
    const __m256i scales = six_bit(tile + P::kScales, h, 0, pair / 2);
    const int j = 2 * pair;
    const int8_t* aj[NT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) aj[i] = a[i] + 32 * j;
    sub_block<P, false, NT>(qs + 512 * pair, qh, j, scale_pairs(scales, j), aj, isum);
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) aj[i] += 32;
    sub_block<P, true, NT>(qs + 512 * pair, qh, j + 1, scale_pairs(scales, j + 1), aj, isum);
  }
  // Mins as int16 pairs (m0, m2), (m1, m3), (m4, m6), (m5, m7), against the quantizer's
  // sub-block sum pairs in the same order.
  const __m256i m_lo = six_bit(tile + P::kScales, h, 1, 0);
  const __m256i m_hi = six_bit(tile + P::kScales, h, 1, 1);
  const __m256i even = _mm256_set1_epi32(0x00FF00FF);
  const __m256i mp[4] = {_mm256_and_si256(m_lo, even), _mm256_srli_epi16(m_lo, 8),
                         _mm256_and_si256(m_hi, even), _mm256_srli_epi16(m_hi, 8)};
  const __m256 d = half_halves(tile + P::kD, h), dmin = half_halves(tile + P::kDmin, h);
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    const int32_t* s = acts.sums_row(t0 + i) + 4 * b;
    __m256i msum = _mm256_madd_epi16(mp[0], broadcast_dword(s));
    for (int q = 1; q < 4; ++q) {
      msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mp[q], broadcast_dword(s + q)));
    }
    const __m256 v = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), dmin,
                                      _mm256_mul_ps(_mm256_cvtepi32_ps(isum[i]), d));
    acc[i] = _mm256_fmadd_ps(v, _mm256_set1_ps(acts.d_row(t0 + i)[b]), acc[i]);
  }
}

// ---- Q6_K: 16 groups of 16 values, signed 8-bit scales, q - 32 ----

// Dword k of a group of the half in quarter N of its 128-value half: lane L = values
// 4k..4k+3 of the group of row 8h + L, unsigned six bits. Quarter N (32 values) takes the low
// (N < 2) or high nibbles of ql bytes 32(N % 2) + l and bits 2N, 2N+1 of qh byte l (`ql`,
// `qh`: the half's dwords of the group's first values in the 128-value half).
template <int N>
DSPARK_AVX2_INLINE __m256i group_dword(const uint8_t* ql, const uint8_t* qh, int k) {
  const __m256i l = load256(ql + 64 * (8 * (N % 2) + k));
  const __m256i low =
      _mm256_and_si256(N >= 2 ? _mm256_srli_epi16(l, 4) : l, _mm256_set1_epi8(0x0F));
  // Bits 2N, 2N+1 of each byte to bits 4, 5 (a 16-bit shift; the mask drops what crossed bytes).
  const __m256i hb = load256(qh + 64 * k);
  const __m256i high = N < 2    ? _mm256_slli_epi16(hb, 4 - 2 * N)
                       : N == 2 ? hb
                                : _mm256_srli_epi16(hb, 2);
  return _mm256_or_si256(low, _mm256_and_si256(high, _mm256_set1_epi8(0x30)));
}

// The signed scale of group g of the half as an int16 pair in each lane: byte g % 4 of scale
// dword g / 4, sign-extended, copied to the high half.
DSPARK_AVX2_INLINE __m256i q6_scale_pairs(const uint8_t* tile, int h, int g) {
  const __m256i s32 = _mm256_srai_epi32(_mm256_sll_epi32(half_dword(tile + Q6K::kScales, g / 4, h),
                                                         _mm_cvtsi32_si128(24 - 8 * (g % 4))),
                                        24);
  return _mm256_blend_epi16(s32, _mm256_slli_epi32(s32, 16), 0xAA);
}

// isum[i] += scale x (group g of the half . token i's values) for group g in quarter N; a[i]
// points at token i's values of the super-block.
template <int N, int NT>
DSPARK_AVX2_INLINE void group(const uint8_t* tile, int h, int g, const int8_t* const a[NT],
                              __m256i isum[NT]) {
  const int hh = g / 8, l0 = 16 * (g % 2);
  const uint8_t* ql = tile + Q6K::kQl + 4 * kGroupRows * ((64 * hh + l0) / 4) + 32 * h;
  const uint8_t* qh = tile + Q6K::kQh + 4 * kGroupRows * ((32 * hh + l0) / 4) + 32 * h;
  const __m256i sc = q6_scale_pairs(tile, h, g);
#pragma GCC unroll 2
  for (int k = 0; k < 4; k += 2) {
    const __m256i w0 = group_dword<N>(ql, qh, k), w1 = group_dword<N>(ql, qh, k + 1);
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      const int8_t* x = a[i] + 16 * g + 4 * k;
      const __m256i p = add_pairs(_mm256_maddubs_epi16(w0, broadcast_dword(x)), w1, x + 4);
      isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p, sc));
    }
  }
}

// One token, isum += the 4 groups 8 hh + 2 N + odd (N = 0..3) of the half: the quarters share
// their loads (low bits from two ql dwords, high bits from one qh dword), half the vector work
// of group<N, 1> four times. The integer sums are exact, so this order gives the same bits as
// the one of several tokens.
DSPARK_AVX2_INLINE void column_q6(const uint8_t* tile, int h, int hh, int odd, const int8_t* a,
                                  __m256i& isum) {
  const int l0 = 16 * odd;
  const uint8_t* ql = tile + Q6K::kQl + 4 * kGroupRows * ((64 * hh + l0) / 4) + 32 * h;
  const uint8_t* qh = tile + Q6K::kQh + 4 * kGroupRows * ((32 * hh + l0) / 4) + 32 * h;
  const __m256i low = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  __m256i sc[4];
  for (int n = 0; n < 4; ++n) sc[n] = q6_scale_pairs(tile, h, 8 * hh + 2 * n + odd);
#pragma GCC unroll 2
  for (int k0 = 0; k0 < 4; k0 += 2) {
    __m256i p[4];
    for (int n = 0; n < 4; ++n) p[n] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int k = k0; k < k0 + 2; ++k) {
      const __m256i la = load256(ql + 64 * k), lb = load256(ql + 64 * (8 + k));
      const __m256i hb = load256(qh + 64 * k);
      const __m256i w[4] = {_mm256_or_si256(_mm256_and_si256(la, low),
                                            _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45)),
                            _mm256_or_si256(_mm256_and_si256(lb, low),
                                            _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), low),
                                            _mm256_and_si256(hb, bits45)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), low),
                                            _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45))};
#pragma GCC unroll 4
      for (int n = 0; n < 4; ++n) {
        p[n] = add_pairs(p[n], w[n], a + 16 * (8 * hh + 2 * n + odd) + 4 * k);
      }
    }
#pragma GCC unroll 4
    for (int n = 0; n < 4; ++n) isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p[n], sc[n]));
  }
}

template <int NT>
DSPARK_AVX2_INLINE void half_q6(const uint8_t* tile, int h, const QuantizedActs& acts, int64_t t0,
                                int64_t b, __m256 acc[NT]) {
  const int8_t* a[NT];
  __m256i isum[NT];  // lane L: sum over groups of scale * (q . a)
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    a[i] = acts.qs_row(t0 + i) + b * kQKK;
    isum[i] = _mm256_setzero_si256();
  }
  // Group g = 8 hh + 2 N + odd: 128-value half hh, quarter N, first or second 16 values.
  for (int hh = 0; hh < 2; ++hh) {
    for (int odd = 0; odd < 2; ++odd) {
      if constexpr (NT == 1) {
        column_q6(tile, h, hh, odd, a[0], isum[0]);
      } else {
        group<0, NT>(tile, h, 8 * hh + odd, a, isum);
        group<1, NT>(tile, h, 8 * hh + 2 + odd, a, isum);
        group<2, NT>(tile, h, 8 * hh + 4 + odd, a, isum);
        group<3, NT>(tile, h, 8 * hh + 6 + odd, a, isum);
      }
    }
  }
  // The offset: 32 * sum over groups of scale * (sum of a), the scales as int16 pairs (s0, s2),
  // (s1, s3), (s4, s6), ... against the quantizer's group sum pairs in the same order.
  __m256i sp[8];
  for (int q = 0; q < 4; ++q) {
    const __m256i s = half_dword(tile + Q6K::kScales, q, h);
    sp[2 * q] = _mm256_srai_epi16(_mm256_slli_epi16(s, 8), 8);
    sp[2 * q + 1] = _mm256_srai_epi16(s, 8);
  }
  const __m256 d = half_halves(tile + Q6K::kD, h);
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    const int32_t* s = acts.sums_row(t0 + i) + 8 * b;
    __m256i off = _mm256_madd_epi16(sp[0], broadcast_dword(s));
    for (int p = 1; p < 8; ++p) {
      off = _mm256_add_epi32(off, _mm256_madd_epi16(sp[p], broadcast_dword(s + p)));
    }
    const __m256i v = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(off, 5));
    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v),
                             _mm256_mul_ps(d, _mm256_set1_ps(acts.d_row(t0 + i)[b])), acc[i]);
  }
}

// ---- tiles to outputs ----

// Half h of the tile of layout L for the block column at `first` (`count` rows in the file's
// layout, row stride `stride`): the bytes packed::pack_group puts there, zeros for rows past
// count.
template <const packed::Layout& L>
void stage_half(const uint8_t* first, uint64_t stride, int count, int h, uint8_t* tile) {
  for (int f = 0; f < L.n_fields; ++f) {
    const packed::Field& x = L.fields[f];
    for (int l = 0; l < kHalfRows; ++l) {
      const int row = kHalfRows * h + l;
      for (int c = 0; c < x.count; ++c) {
        uint8_t* out = tile + x.tile_at + x.unit * (kGroupRows * c + row);
        if (row < count) {
          std::memcpy(out, first + row * stride + x.block_at + x.unit * c, size_t(x.unit));
        } else {
          std::memset(out, 0, size_t(x.unit));
        }
      }
    }
  }
}

// Rows [r0 + 8 h0, r0 + 8 (h0 + NH)) of the group of `count` rows at r0 for NT tokens from t0:
// NH halves side by side, super-block by super-block (a single token takes both halves of each
// tile while it is in L1, so its weights stream from memory once). Tiles come from the packed
// copy for whole groups of 16 rows from row 0 when there is one, else are staged from the
// file's layout; the computation is the same either way.
template <class P, int NT, int NH>
void halves_tokens(const MatmulArgs& args, int64_t r0, int count, int h0, int64_t t0,
                   bool prefetch) {
  const int64_t nb = args.cols / kQKK;
  const bool packed = args.packed != nullptr && count == kGroupRows && r0 % kGroupRows == 0;
  const uint8_t* group = packed ? args.packed + (r0 / kGroupRows) * kGroupRows * args.row_bytes
                                : args.w + r0 * args.row_bytes;
  __m256 acc[NH][NT];
  for (int hi = 0; hi < NH; ++hi) {
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) acc[hi][i] = _mm256_setzero_ps();
  }
  alignas(32) uint8_t staged[P::kTileBytes];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tile = staged;
    if (packed) {
      tile = group + b * P::kTileBytes;
      if (prefetch) {
        for (int line = 0; line < P::kTileBytes; line += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(tile + kPrefetchBytes + line), _MM_HINT_T0);
        }
      }
    } else {
      for (int hi = 0; hi < NH; ++hi) {
        stage_half<P::kLayout>(group + b * P::kBlockBytes, args.row_bytes, count, h0 + hi, staged);
      }
    }
    for (int hi = 0; hi < NH; ++hi) {
      if constexpr (std::is_same_v<P, Q6K>) {
        half_q6<NT>(tile, h0 + hi, args.acts, t0, b, acc[hi]);
      } else {
        half_q45<P, NT>(tile, h0 + hi, args.acts, t0, b, acc[hi]);
      }
    }
  }
  for (int hi = 0; hi < NH; ++hi) {
    const int h = h0 + hi;
    const int present = count - kHalfRows * h < kHalfRows ? count - kHalfRows * h : kHalfRows;
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      float* y = args.y + (t0 + i) * args.y_stride + r0 + kHalfRows * h;
      if (present == kHalfRows) {
        _mm256_storeu_ps(y, acc[hi][i]);
      } else {
        alignas(32) float out[kHalfRows];
        _mm256_store_ps(out, acc[hi][i]);
        std::memcpy(y, out, sizeof(float) * size_t(present));
      }
    }
  }
}

template <class P>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t rb = r0; rb < r1; rb += kGroupRows) {
    const int count = int(rb + kGroupRows < r1 ? kGroupRows : r1 - rb);
    if (t1 - t0 == 1 && count > kHalfRows) {
      halves_tokens<P, 1, 2>(args, rb, count, 0, t0, true);
      continue;
    }
    // Several tokens: half by half, in passes of up to kMaxTokens tokens.
    for (int h = 0; h < 2 && kHalfRows * h < count; ++h) {
      for (int64_t t = t0; t < t1; t += kMaxTokens) {
        // The weights come from memory on the first pass only.
        const bool prefetch = h == 0 && t == t0;
        switch (t1 - t >= kMaxTokens ? kMaxTokens : int(t1 - t)) {
          case 1:
            halves_tokens<P, 1, 1>(args, rb, count, h, t, prefetch);
            break;
          case 2:
            halves_tokens<P, 2, 1>(args, rb, count, h, t, prefetch);
            break;
          case 3:
            halves_tokens<P, 3, 1>(args, rb, count, h, t, prefetch);
            break;
          default:
            halves_tokens<P, 4, 1>(args, rb, count, h, t, prefetch);
            break;
        }
      }
    }
  }
}

}  // namespace

void avx2_tiles_q4_k(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  rows<Q4K>(args, r0, r1, t0, t1);
}
void avx2_tiles_q5_k(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  rows<Q5K>(args, r0, r1, t0, t1);
}
void avx2_tiles_q6_k(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  rows<Q6K>(args, r0, r1, t0, t1);
}

}  // namespace dspark::cpu
