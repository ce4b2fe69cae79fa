// AVX2 + FMA + F16C kernels over the packed 16-row tiles of the 32-element formats (Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0; layout in packed_q32.h), for CPUs without AVX-512 VNNI.
//
// A tile is read as two halves of 8 rows: a 256-bit load of dword k of the value bytes puts row
// L's 4 bytes in int32 lane L. Nibble formats give two weight vectors per load (low nibbles:
// values 4k..4k+3; high nibbles: values 16 + 4k..16 + 4k + 3), Q8_0 one; so weight vector j
// always holds values 4j..4j+3 of the 8 rows. Against the token's 4 activations at 4j broadcast
// to every lane, vpmaddubsw leaves each row's two pair sums in its lane, and vpmaddwd with ones
// folds them to one int32 per row: no transposes, no horizontal sums, and a finished half is one
// 8-float store per token. The unpacking is paid once per half tile for up to kMaxTokens tokens.
// Matrices without a packed copy are read through the same tiles, staged per block from the
// file's layout (a 4x4 dword transpose per 16 value bytes), so the two layouts give the same
// bits; the packed copy only saves that staging.
//
// The activations are the natural q8_32 format (per 32 values an fp32 scale and the int32 sum
// of the int8 values), the same as the natural-order AVX2 kernels', so packed and unpacked
// matrices can share one quantization. Weights are the unsigned operand of vpmaddubsw: nibble
// formats as they are (offset formats take the offset back through the block's activation sum:
// dot(q - o, a) = dot(q, a) - o * sum(a)); Q8_0 through the sign trick (|w| x sign(a, w)).
//
// int16 bounds (vpmaddubsw saturates at 32767, |a| <= 127):
//   4-bit q <= 15: a pair sum is at most 2 * 15 * 127 = 3810; 8 of them 30480: a whole block.
//   5-bit q <= 31: a pair sum is at most 2 * 31 * 127 = 7874; 4 of them 31496: half a block
//     (low / high nibble vectors in separate int16 sums).
//   Q8_0 |w| <= 128: a pair sum is at most 2 * 128 * 127 = 32512: widened at once.
//
// Batch invariance: the integer part is exact, so its order is free; the float part (convert,
// scale multiply, one or two FMAs per block in block order) is the same instruction sequence for
// every token whatever the number of tokens in the pass.
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "packed_q32.h"

#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include "avx2_math.h"

// The per-block helpers must inline for their vectors to stay in registers.
#define DSPARK_AVX2_INLINE inline __attribute__((always_inline))

namespace dspark::cpu {
namespace {

constexpr int kHalfRows = 8;          // rows per half tile: one per int32 lane
constexpr int kMaxTokens = 4;         // tokens per pass over a half (register budget)
constexpr int kPrefetchBytes = 4096;  // how far ahead tiles are prefetched

using packed::Q4_0;
using packed::Q4_1;
using packed::Q5_0;
using packed::Q5_1;
using packed::Q8_0;

// log2 of the offset the nibble formats subtract (Q8_0 uses the sign trick instead).
template <class T>
constexpr int kOffsetShift = T::kQ8 ? 0 : T::kShift;
// Five-bit values need their low and high nibble vectors summed apart in int16 (see above).
template <class T>
constexpr bool kFiveBit = T::kQh >= 0;

using avx2::broadcast_dword;
using avx2::load256;

// v, opaque to the optimizer: GCC otherwise reassociates a chain of integer adds into a tree
// of partial sums that needs more registers than there are, and spills.
DSPARK_AVX2_INLINE __m256i in_order(__m256i v) {
  asm("" : "+x"(v));
  return v;
}

// 0x10 in byte i of lane L where bit 4 j + i of row L's fifth-bit word is set: byte j / 2 of
// the word replicated over its dword (vpshufb stays inside 128-bit lanes, as the dwords do),
// then one bit tested per byte.
DSPARK_AVX2_INLINE __m256i fifth_bits(__m256i qh, int j) {
  const __m256i word_base = _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0C0C0C0C, 0, 0x04040404,
                                              0x08080808, 0x0C0C0C0C);
  const __m256i rep = _mm256_add_epi8(word_base, _mm256_set1_epi8(char(j / 2)));
  const int s = 4 * (j & 1);
  const __m256i bits =
      _mm256_set1_epi32(int((1u << s) | (2u << s) << 8 | (4u << s) << 16 | (8u << s) << 24));
  const __m256i hit = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, rep), bits), bits);
  return _mm256_and_si256(hit, _mm256_set1_epi8(0x10));
}

// Integer dot products of one half tile's block with NT tokens: dot[i] lane L = sum over the
// block of q x a for row L and token t0 + i (q as stored: unsigned nibbles, or signed Q8_0).
template <class T, int NT>
DSPARK_AVX2_INLINE void half_dots(const uint8_t* qs, __m256i qh, const int8_t* const a[NT],
                                  __m256i dot[NT]) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (T::kQ8) {
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) dot[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m256i w = load256(qs + 64 * j);
      const __m256i wabs = _mm256_sign_epi8(w, w);
#pragma GCC unroll 8
      for (int i = 0; i < NT; ++i) {
        const __m256i as = _mm256_sign_epi8(broadcast_dword(a[i] + 4 * j), w);
        dot[i] = in_order(
            _mm256_add_epi32(dot[i], _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, as), ones)));
      }
    }
    return;
  }
  // Nibble formats: lo[i] sums the low-nibble vectors (j < 4), hi[i] the high ones; 4-bit
  // formats with several tokens share one int16 sum (fewer registers, enough parallel chains).
  constexpr bool kSplit = kFiveBit<T> || NT <= 2;
  const __m256i low = _mm256_set1_epi8(0x0F);
  __m256i lo[NT], hi[NT];
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) lo[i] = hi[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m256i p = load256(qs + 64 * k);
    __m256i wl = _mm256_and_si256(p, low);
    __m256i wh = _mm256_and_si256(_mm256_srli_epi16(p, 4), low);
    if constexpr (kFiveBit<T>) {
      wl = _mm256_or_si256(wl, fifth_bits(qh, k));
      wh = _mm256_or_si256(wh, fifth_bits(qh, k + 4));
    }
    // Saturating adds that never saturate (the bounds above): unlike plain adds, GCC does not
    // reassociate them into trees of partial sums that spill registers.
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      lo[i] = _mm256_adds_epi16(lo[i], _mm256_maddubs_epi16(wl, broadcast_dword(a[i] + 4 * k)));
      __m256i& h = kSplit ? hi[i] : lo[i];
      h = _mm256_adds_epi16(h, _mm256_maddubs_epi16(wh, broadcast_dword(a[i] + 16 + 4 * k)));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    if constexpr (kFiveBit<T>) {
      dot[i] = _mm256_add_epi32(_mm256_madd_epi16(lo[i], ones), _mm256_madd_epi16(hi[i], ones));
    } else {
      // Both halves of a 4-bit block fit one int16 sum.
      dot[i] = _mm256_madd_epi16(kSplit ? _mm256_add_epi16(lo[i], hi[i]) : lo[i], ones);
    }
  }
}

DSPARK_AVX2_INLINE __m128i load128(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Half h of a tile built from the file's layout: `first` is block b of row r0 + 8 h (row
// stride `stride`); `out` (a tile's bytes) receives half h's fields at the packed tile's
// offsets, the very bytes the packed copy holds, so both layouts give the same results.
template <class T>
DSPARK_AVX2_INLINE void stage_half(const uint8_t* first, uint64_t stride, int h, uint8_t* out) {
  using P = packed::Tile<T>;
  for (int l = 0; l < kHalfRows; ++l) {
    const uint8_t* block = first + l * stride;
    std::memcpy(out + P::kD + 2 * (kHalfRows * h + l), block, 2);
    if constexpr (T::kMin) std::memcpy(out + P::kM + 2 * (kHalfRows * h + l), block + 2, 2);
    if constexpr (kFiveBit<T>)
      std::memcpy(out + P::kQh + 4 * (kHalfRows * h + l), block + T::kQh, 4);
  }
  // Value bytes, 16 at a time: z[g] holds rows g (low 128 bits) and g + 4 (high); a 4x4 dword
  // transpose in each 128-bit lane leaves dword k of row l in lane l of p[k].
  for (int c = 0; c < (T::kQ8 ? 2 : 1); ++c) {
    __m256i z[4];
    for (int g = 0; g < 4; ++g) {
      const uint8_t* q = first + T::kQs + 16 * c + g * stride;
      z[g] = _mm256_set_m128i(load128(q + 4 * stride), load128(q));
    }
    const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    const __m256i p[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                          _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
    for (int k = 0; k < 4; ++k) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + P::kQs + 64 * (4 * c + k) + 32 * h),
                          p[k]);
    }
  }
}

// Rows [r0 + 8 h, r0 + 8 h + 8) for NT tokens from t0, from packed group `group` or (kFile)
// from the file's layout at args.w.
template <class T, int NT, bool kFile>
void half_tokens(const MatmulArgs& args, const uint8_t* group, int64_t r0, int h, int64_t t0,
                 bool prefetch) {
  using P = packed::Tile<T>;
  constexpr int kShift = kOffsetShift<T>;
  const int64_t nb = args.cols / kQK;
  const QuantizedActs& acts = args.acts;
  __m256 acc[NT];
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
  alignas(32) uint8_t staged[kFile ? P::kBytes : 1];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tile = group + b * P::kBytes;
    if constexpr (kFile) {
      stage_half<T>(args.w + (r0 + kHalfRows * h) * args.row_bytes + b * T::kBytes, args.row_bytes,
                    h, staged);
      tile = staged;
    } else if (prefetch) {
      for (int line = 0; line < P::kBytes; line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(tile + kPrefetchBytes + line), _MM_HINT_T0);
      }
    }
    const int8_t* a[NT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) a[i] = acts.qs_row(t0 + i) + b * kQK;
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFiveBit<T>) qh = load256(tile + P::kQh + 32 * h);
    __m256i dot[NT];
    half_dots<T, NT>(tile + P::kQs + 32 * h, qh, a, dot);
    const __m256 d = _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + P::kD + 2 * kHalfRows * h)));
    __m256 m = _mm256_setzero_ps();
    if constexpr (T::kMin) {
      m = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + P::kM + 2 * kHalfRows * h)));
    }
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      const float da = acts.d_row(t0 + i)[b];
      const int32_t sum = acts.sums_row(t0 + i)[b];
      __m256i isum = dot[i];
      if constexpr (kShift > 0)
        isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(sum * (1 << kShift)));
      acc[i] =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_set1_ps(da)), acc[i]);
      if constexpr (T::kMin) acc[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(da * float(sum)), acc[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    _mm256_storeu_ps(args.y + (t0 + i) * args.y_stride + r0 + kHalfRows * h, acc[i]);
  }
}

// NT tokens from t0 for half h of the group at r0.
template <class T, int NT>
void half_any(const MatmulArgs& args, const uint8_t* group, int64_t r0, int h, int64_t t0,
              bool prefetch) {
  if (group != nullptr) {
    half_tokens<T, NT, false>(args, group, r0, h, t0, prefetch);
  } else {
    half_tokens<T, NT, true>(args, group, r0, h, t0, prefetch);
  }
}

// The 16 rows from r0 (a multiple of 16, a whole group) for tokens [t0, t1): from the packed
// copy if there is one, else from the file's layout.
template <class T>
void group_rows(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1) {
  const uint8_t* group = args.packed == nullptr
                             ? nullptr
                             : args.packed + (r0 / packed::kRows) * packed::kRows * args.row_bytes;
  for (int h = 0; h < 2; ++h) {
    for (int64_t t = t0; t < t1; t += kMaxTokens) {
      // The weights come from memory on the first pass only.
      const bool prefetch = h == 0 && t == t0;
      switch (t1 - t >= kMaxTokens ? kMaxTokens : int(t1 - t)) {
        case 1:
          half_any<T, 1>(args, group, r0, h, t, prefetch);
          break;
        case 2:
          half_any<T, 2>(args, group, r0, h, t, prefetch);
          break;
        case 3:
          half_any<T, 3>(args, group, r0, h, t, prefetch);
          break;
        default:
          half_any<T, 4>(args, group, r0, h, t, prefetch);
          break;
      }
    }
  }
}

}  // namespace

void avx2_packed_q4_0(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1) {
  group_rows<Q4_0>(args, r0, t0, t1);
}
void avx2_packed_q4_1(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1) {
  group_rows<Q4_1>(args, r0, t0, t1);
}
void avx2_packed_q5_0(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1) {
  group_rows<Q5_0>(args, r0, t0, t1);
}
void avx2_packed_q5_1(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1) {
  group_rows<Q5_1>(args, r0, t0, t1);
}
void avx2_packed_q8_0(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1) {
  group_rows<Q8_0>(args, r0, t0, t1);
}

}  // namespace dspark::cpu
