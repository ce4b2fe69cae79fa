// AVX-512 VNNI kernels for the K-quants (Q4_K, Q5_K, Q6_K).
//
// As for the 32-element formats (kernels_avx512_q32.cpp), int32 lane L holds row r0 + L. A tile
// is one super-block column of 16 rows in the packed layout of packed_kquant.h: weights packed
// at load are read in place; rows in the file's layout (and the last rows short of 16) are first
// gathered into a tile on the stack by 4x4 transposes, so every path computes from the same
// tile bytes and gives the same results. Each 32-value sub-block (Q4_K, Q5_K) or 16-value group
// (Q6_K) of the 16 rows is unpacked to unsigned bytes in 8 or 4 registers, one dword of four
// values per lane, and multiplied with a token's activations by broadcasting their dwords: each
// row's dot product for the group lands in its lane, its scale multiplies it as an integer, and
// one float step per super-block and token applies d (and dmin) and the activation scale. The
// unpacking is paid once per tile for up to 8 tokens; a token costs 64 vpdpbusd per tile plus
// one integer multiply per group. The integer part is exact, so only the float steps fix the
// result, and they are the same sequence for every token whatever the batch. Activations stay
// in value order, with the sums the formats' mins (Q4_K, Q5_K) and -32 offset (Q6_K) need.
// Only the token loops unroll: with the group loops unrolled too, this file took minutes to
// compile under the sanitizers, for no measurable gain.
#include <cstdint>
#include <cstring>

#include "kernels_avx512.h"
#include "packed_kquant.h"

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")
#include "avx512_tile.h"

namespace dspark::cpu {
namespace {

using packed::Q4K;
using packed::Q5K;
using packed::Q6K;

constexpr int kGroupRows = packed::kRows;  // rows per tile: one per int32 lane
constexpr int kPrefetchBytes = 8192;       // how far ahead packed tiles are prefetched
constexpr int kTernaryAOrBAndC = 0xF8;     // vpternlog truth table of a | (b & c)

DSPARK_AVX512_INLINE __m512i load(const uint8_t* p) {
  return _mm512_loadu_si512(p);
}

// 16 fp16 values at p as floats.
DSPARK_AVX512_INLINE __m512 load_halves(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The dword at p in every lane (one broadcast load).
DSPARK_AVX512_INLINE __m512i broadcast_dword(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Whether gather_tile's 16-byte loads of a layout's dword fields stay inside the block.
constexpr bool loads_fit(const packed::Layout& l) {
  for (int f = 0; f < l.n_fields; ++f) {
    const packed::Field& x = l.fields[f];
    if (x.unit == 4 && x.block_at + 4 * ((x.count + 3) / 4 * 4) > l.block_bytes) return false;
  }
  return true;
}
static_assert(loads_fit(Q4K::kLayout) && loads_fit(Q5K::kLayout) && loads_fit(Q6K::kLayout));

// Writes the tile of layout L for the block column at `first` of `count` rows (row stride
// `stride`, the file's layout); rows from `count` on are zeros. Same bytes as packed::pack_group.
template <const packed::Layout& L, bool kTail>
DSPARK_AVX512_INLINE void gather_tile(const uint8_t* first, uint64_t stride, int count,
                                      uint8_t* tile) {
#pragma GCC unroll 8
  for (int f = 0; f < L.n_fields; ++f) {
    const packed::Field& x = L.fields[f];
    if (x.unit == 4) {
      for (int c = 0; c < x.count; c += 4) {
        __m512i p[4];
        avx512::load_transposed<kTail>(first + x.block_at + 4 * c, stride, count, p);
        for (int i = 0; i < 4 && c + i < x.count; ++i) {
          _mm512_storeu_si512(tile + x.tile_at + 64 * (c + i), p[i]);
        }
      }
    } else {  // d or dmin: 16 two-byte moves
      for (int lane = 0; lane < kGroupRows; ++lane) {
        uint16_t h = 0;
        if (!kTail || lane < count) std::memcpy(&h, first + lane * stride + x.block_at, 2);
        std::memcpy(tile + x.tile_at + 2 * lane, &h, 2);
      }
    }
  }
}

// Shift counts of the variable-shift instructions (one count for all lanes).
DSPARK_AVX512_INLINE __m128i shift_count(int bits) {
  return _mm_cvtsi32_si128(bits);
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32 values, six-bit scales and mins ----

// Sub-block j of the 16 rows: w[k] lane L = values 4k..4k+3 of row L's sub-block, unsigned.
// Sub-blocks 2p and 2p + 1 are the low and high nibbles of qs bytes 32p..32p+31; Q5_K's fifth
// bit of value l of sub-block j is bit j of qh byte l.
template <class P>
DSPARK_AVX512_INLINE void sub_block_values(const uint8_t* tile, int j, __m512i w[8]) {
  const __m512i low = _mm512_set1_epi8(0x0F);
  const __m128i nibble = shift_count(4 * (j % 2));
  const __m512i fifth = _mm512_set1_epi8(char(1 << j));
  for (int k = 0; k < 8; ++k) {
    const __m512i q = load(tile + P::kQs + 64 * (8 * (j / 2) + k));
    w[k] = _mm512_and_si512(_mm512_srl_epi16(q, nibble), low);
    if constexpr (std::is_same_v<P, Q5K>) {
      const __mmask64 set = _mm512_test_epi8_mask(load(tile + P::kQh + 64 * k), fifth);
      w[k] = _mm512_mask_add_epi8(w[k], set, w[k], _mm512_set1_epi8(0x10));
    }
  }
}

// Lane L: bytes 0..3 = the scales (sel 0) or mins (sel 1) of sub-blocks 4h..4h+3 of row L.
template <int H>
DSPARK_AVX512_INLINE __m512i six_bit(const uint8_t* scales /* tile field */, int sel) {
  const __m512i s = load(scales + 64 * sel);
  if constexpr (H == 0) return _mm512_and_si512(s, _mm512_set1_epi8(0x3F));
  // High sub-blocks: low four bits from the third dword, top two from bits 6-7 of s.
  const __m512i s2 = load(scales + 128);
  const __m512i lo4 =
      _mm512_and_si512(sel == 0 ? s2 : _mm512_srli_epi32(s2, 4), _mm512_set1_epi8(0x0F));
  return _mm512_ternarylogic_epi32(lo4, _mm512_srli_epi32(s, 2), _mm512_set1_epi8(0x30),
                                   kTernaryAOrBAndC);
}

// NT tokens over one tile: acc[i] lane L += row L's dot product with token t0 + i's values of
// super-block b.
template <class P, int NT>
DSPARK_AVX512_INLINE void tile_q45(const uint8_t* tile, const QuantizedActs& acts, int64_t t0,
                                   int64_t b, __m512 acc[NT]) {
  __m512i isum[NT];  // lane L: sum over sub-blocks of scale * (q . a)
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) isum[i] = _mm512_setzero_si512();
  const __m512i scales[2] = {six_bit<0>(tile + P::kScales, 0), six_bit<1>(tile + P::kScales, 0)};
  for (int j = 0; j < 8; ++j) {
    __m512i w[8];
    sub_block_values<P>(tile, j, w);
    // The scale of sub-block j: byte j % 4 of each dword, zero-extended (vpshufb indexes bytes
    // within each 128-bit lane).
    const __m512i pick = _mm512_add_epi32(
        _mm512_set4_epi32(int(0x8080800C), int(0x80808008), int(0x80808004), int(0x80808000)),
        _mm512_set1_epi32(j % 4));
    const __m512i sc = _mm512_shuffle_epi8(scales[j / 4], pick);
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      const int8_t* a = acts.qs_row(t0 + i) + b * kQKK + 32 * j;
      __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], broadcast_dword(a));
#pragma GCC unroll 8
      for (int k = 1; k < 8; ++k) dot = _mm512_dpbusd_epi32(dot, w[k], broadcast_dword(a + 4 * k));
      isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(dot, sc));
    }
  }
  // Mins as int16 pairs (m0, m2), (m1, m3), (m4, m6), (m5, m7), against the quantizer's
  // sub-block sum pairs in the same order.
  const __m512i m_lo = six_bit<0>(tile + P::kScales, 1), m_hi = six_bit<1>(tile + P::kScales, 1);
  const __m512i even = _mm512_set1_epi32(0x00FF00FF);
  const __m512i mp[4] = {_mm512_and_si512(m_lo, even), _mm512_srli_epi16(m_lo, 8),
                         _mm512_and_si512(m_hi, even), _mm512_srli_epi16(m_hi, 8)};
  const __m512 d = load_halves(tile + P::kD), dmin = load_halves(tile + P::kDmin);
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    const int32_t* s = acts.sums_row(t0 + i) + 4 * b;
    __m512i msum = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[0], broadcast_dword(s));
    for (int p = 1; p < 4; ++p) msum = _mm512_dpwssd_epi32(msum, mp[p], broadcast_dword(s + p));
    const __m512 v = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), dmin,
                                      _mm512_mul_ps(_mm512_cvtepi32_ps(isum[i]), d));
    acc[i] = _mm512_fmadd_ps(v, _mm512_set1_ps(acts.d_row(t0 + i)[b]), acc[i]);
  }
}

// ---- Q6_K: 16 groups of 16 values, signed 8-bit scales, q - 32 ----

// Group g (values 16g..16g+15) of the 16 rows: w[k] lane L = values 4k..4k+3 of the group,
// unsigned six bits. In each 128-value half h, quarter n (32 values) takes low (n < 2) or high
// nibbles of ql bytes 64h + 32(n % 2) + l and bits 2n, 2n+1 of qh byte 32h + l.
DSPARK_AVX512_INLINE void group_values(const uint8_t* tile, int g, __m512i w[4]) {
  const int h = g / 8, n = (g / 2) % 4, l0 = 16 * (g % 2);
  const int ql_dword = (64 * h + 32 * (n % 2) + l0) / 4, qh_dword = (32 * h + l0) / 4;
  const __m512i low = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  const __m128i nibble = shift_count(n >= 2 ? 4 : 0);
  // Rotating each dword left by 4 - 2n moves bits 2n, 2n+1 of each byte to bits 4, 5 of the
  // same byte (the mask drops what crossed bytes).
  const __m512i rotate = _mm512_set1_epi32((4 - 2 * n) & 31);
  for (int k = 0; k < 4; ++k) {
    const __m512i ql = _mm512_srl_epi16(load(tile + Q6K::kQl + 64 * (ql_dword + k)), nibble);
    const __m512i qh = _mm512_rolv_epi32(load(tile + Q6K::kQh + 64 * (qh_dword + k)), rotate);
    w[k] = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, low), qh, bits45, kTernaryAOrBAndC);
  }
}

template <int NT>
DSPARK_AVX512_INLINE void tile_q6(const uint8_t* tile, const QuantizedActs& acts, int64_t t0,
                                  int64_t b, __m512 acc[NT]) {
  __m512i isum[NT];  // lane L: sum over groups of scale * (q . a)
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) isum[i] = _mm512_setzero_si512();
  for (int g = 0; g < 16; ++g) {
    __m512i w[4];
    group_values(tile, g, w);
    // The signed scale of group g: byte g % 4 of scale dword g / 4, sign-extended.
    const __m512i sc = _mm512_srai_epi32(
        _mm512_sll_epi32(load(tile + Q6K::kScales + 64 * (g / 4)), shift_count(24 - 8 * (g % 4))),
        24);
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      const int8_t* a = acts.qs_row(t0 + i) + b * kQKK + 16 * g;
      __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], broadcast_dword(a));
#pragma GCC unroll 4
      for (int k = 1; k < 4; ++k) dot = _mm512_dpbusd_epi32(dot, w[k], broadcast_dword(a + 4 * k));
      isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(dot, sc));
    }
  }
  // The offset: 32 * sum over groups of scale * (sum of a), the scales as int16 pairs (s0, s2),
  // (s1, s3), (s4, s6), ... against the quantizer's group sum pairs in the same order.
  __m512i sp[8];
  for (int q = 0; q < 4; ++q) {
    const __m512i s = load(tile + Q6K::kScales + 64 * q);
    sp[2 * q] = _mm512_srai_epi16(_mm512_slli_epi16(s, 8), 8);
    sp[2 * q + 1] = _mm512_srai_epi16(s, 8);
  }
  const __m512 d = load_halves(tile + Q6K::kD);
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    const int32_t* s = acts.sums_row(t0 + i) + 8 * b;
    __m512i off = _mm512_dpwssd_epi32(_mm512_setzero_si512(), sp[0], broadcast_dword(s));
    for (int p = 1; p < 8; ++p) off = _mm512_dpwssd_epi32(off, sp[p], broadcast_dword(s + p));
    const __m512i v = _mm512_sub_epi32(isum[i], _mm512_slli_epi32(off, 5));
    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v),
                             _mm512_mul_ps(d, _mm512_set1_ps(acts.d_row(t0 + i)[b])), acc[i]);
  }
}

// ---- tiles to outputs ----

// One tile of layout P for NT tokens.
template <class P, int NT>
DSPARK_AVX512_INLINE void tile_tokens(const uint8_t* tile, const QuantizedActs& acts, int64_t t0,
                                      int64_t b, __m512 acc[NT]) {
  if constexpr (std::is_same_v<P, Q6K>) {
    tile_q6<NT>(tile, acts, t0, b, acc);
  } else {
    tile_q45<P, NT>(tile, acts, t0, b, acc);
  }
}

// Rows [r0, r0 + count) for NT tokens from t0. Tiles come from the packed copy for whole groups
// of 16 rows from row 0 when there is one, else are gathered from the file's layout (zeros for
// rows past count); the computation is the same either way.
template <class P, int NT>
void group_tokens(const MatmulArgs& args, int64_t r0, int count, int64_t t0) {
  const int64_t nb = args.cols / kQKK;
  const uint64_t group_bytes = kGroupRows * args.row_bytes;
  const bool packed = args.packed != nullptr && count == kGroupRows && r0 % kGroupRows == 0;
  const uint8_t* group =
      packed ? args.packed + (r0 / kGroupRows) * group_bytes : args.w + r0 * args.row_bytes;
  __m512 acc[NT];
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) acc[i] = _mm512_setzero_ps();
  alignas(64) uint8_t gathered[P::kTileBytes];
  for (int64_t b = 0; b < nb; ++b) {
    // Weights stream from memory once: ask for the lines ahead of the tile in use (the hardware
    // prefetcher restarts on every short row range a task covers). In the file's layout a
    // group's blocks are back to back, so the next group is asked for along with this one.
    const uint8_t* tile = gathered;
    if (packed) {
      tile = group + b * P::kTileBytes;
      avx512::prefetch_ahead(tile, kPrefetchBytes, P::kTileBytes);
    } else if (count == kGroupRows) {
      avx512::prefetch_ahead(group + b * P::kTileBytes, int(group_bytes), P::kTileBytes);
      gather_tile<P::kLayout, false>(group + b * P::kBlockBytes, args.row_bytes, count, gathered);
    } else {
      gather_tile<P::kLayout, true>(group + b * P::kBlockBytes, args.row_bytes, count, gathered);
    }
    tile_tokens<P, NT>(tile, args.acts, t0, b, acc);
  }
  const __mmask16 present = __mmask16((1u << count) - 1);
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    _mm512_mask_storeu_ps(args.y + (t0 + i) * args.y_stride + r0, present, acc[i]);
  }
}

template <class P>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t rb = r0; rb < r1; rb += kGroupRows) {
    const int count = int(rb + kGroupRows < r1 ? kGroupRows : r1 - rb);
    for (int64_t t = t0; t < t1; t += 8) {
      avx512::with_token_count(t1 - t,
                               [&](auto nt) { group_tokens<P, nt.value>(args, rb, count, t); });
    }
  }
}

// ---- activations ----

// Values in input order with one scale per 256 (as the natural-order quantizer), and per
// super-block the sums in the tile kernels' pairing (kernels.h): min pairs for Q4_K, Q5_K,
// group pairs for Q6_K.
template <bool kMinPairs>
void quantize_q8_256(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < cols / kQKK; ++b) {
    const float* xb = x + b * kQKK;
    __m512 m = _mm512_setzero_ps();
    for (int g = 0; g < 16; ++g) {
      m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(xb + 16 * g)));
    }
    const float amax = _mm512_reduce_max_ps(m);
    const __m512 vid = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    d[b] = amax / 127.0f;
    int32_t group_sum[16];
    for (int g = 0; g < 16; ++g) {
      const __m512i q = _mm512_min_epi32(
          _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * g), vid)),
                           lo),
          hi);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQKK + 16 * g), _mm512_cvtepi32_epi8(q));
      group_sum[g] = _mm512_reduce_add_epi32(q);
    }
    pair_sums<kMinPairs>(group_sum, sums + (kMinPairs ? 4 : 8) * b);
  }
}

}  // namespace

MatmulKernel avx512_q4_k() {
  return {rows<Q4K>, {quantize_q8_256<true>, act_lengths_min_pairs}};
}
MatmulKernel avx512_q5_k() {
  return {rows<Q5K>, {quantize_q8_256<true>, act_lengths_min_pairs}};
}
MatmulKernel avx512_q6_k() {
  return {rows<Q6K>, {quantize_q8_256<false>, act_lengths_group_pairs}};
}

}  // namespace dspark::cpu
