// AVX-512 VNNI kernels for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
//
// A tile is one block column of 16 consecutive rows, transposed so that int32 lane L holds row
// r0 + L: eight vpdpbusd against the token's block (each dword broadcast to all lanes) leave
// every row's integer dot product for that block in its own lane, and one multiply-add applies
// the 16 rows' scales. The lanes are rows, so a row of any length needs no padding and no
// horizontal sum, and a finished group of 16 rows is one store per token. The unpacking and
// transpose are paid once per tile for up to 8 tokens; each token then costs its eight dot
// products and two or three float operations. Weights are the unsigned operand (nibbles as they
// are, Q8_0 biased by 128); the formats' offsets come back through per-block activation terms
// the quantizer prepares. Weights packed at load (packed_q32.h) are already in tile order and
// skip the transpose; the tiles, and so the results, are the same.
#include <cstdint>
#include <cstring>

#include "kernels_avx512.h"
#include "packed_q32.h"

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")
#include "avx512_tile.h"

namespace dspark::cpu {
namespace {

constexpr int kGroupRows = packed::kRows;  // rows per tile: one per int32 lane
constexpr int kPrefetchBytes = 8192;       // how far ahead packed tiles are prefetched

using packed::Q4_0;
using packed::Q4_1;
using packed::Q5_0;
using packed::Q5_1;
using packed::Q8_0;

struct Tile {
  __m512i w[8];  // w[k] lane L: values 4k..4k+3 of row L's block, unsigned bytes
  __m512 d;      // lane L: scale of row L's block
  __m512 m;      // lane L: min of row L's block (Q4_1 / Q5_1)
};

// Completes a tile from its fields: head lane L = row L's first dword (d, and m above it for
// the formats with a min); p[k] lane L = dword k of row L's value bytes; qh lane L = row L's
// fifth bits.
template <class T>
DSPARK_AVX512_INLINE void finish_tile(__m512 d, __m512 m, const __m512i p[], __m512i qh, Tile& t) {
  t.d = d;
  t.m = m;
  if constexpr (T::kQ8) {
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    for (int k = 0; k < 8; ++k) t.w[k] = _mm512_xor_si512(p[k], bias);
  } else {
    const __m512i low = _mm512_set1_epi8(0x0F);
    for (int k = 0; k < 4; ++k) {
      t.w[k] = _mm512_and_si512(p[k], low);
      t.w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(p[k], 4), low);
    }
    if constexpr (T::kQh >= 0) {
      // Fifth bits: value 4k + j of a block is bit 4k + j of its qh word. Replicate byte k/2
      // of each word over the word, then test one bit per byte.
      const __m512i sixteen = _mm512_set1_epi8(16);
      const __m512i word_base = _mm512_set4_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0);
      for (int k = 0; k < 8; ++k) {
        const __m512i rep = _mm512_add_epi8(word_base, _mm512_set1_epi8(char(k / 2)));
        const int s = 4 * (k & 1);
        const __m512i bits =
            _mm512_set1_epi32(int((1u << s) | (2u << s) << 8 | (4u << s) << 16 | (8u << s) << 24));
        const __mmask64 hi = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, rep), bits);
        t.w[k] = _mm512_mask_add_epi8(t.w[k], hi, t.w[k], sixteen);
      }
    }
  }
}

// The tile of one block column of the `count` rows from `first` (row stride `stride`), in the
// file's layout.
template <class T, bool kTail>
DSPARK_AVX512_INLINE void load_tile(const uint8_t* first, uint64_t stride, int count, Tile& t) {
  // The first dword of every block holds d (and m for the formats with a min); every block is
  // at least 16 bytes long, so the 16-byte loads stay inside it.
  const __m512i head = avx512::load_dwords<kTail>(first, stride, count);
  const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head));
  __m512 m = _mm512_setzero_ps();
  if constexpr (T::kMin) m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head, 16)));
  __m512i p[8];
  avx512::load_transposed<kTail>(first + T::kQs, stride, count, p);
  if constexpr (T::kQ8) avx512::load_transposed<kTail>(first + T::kQs + 16, stride, count, p + 4);
  __m512i qh = _mm512_setzero_si512();
  if constexpr (T::kQh >= 0) qh = avx512::load_dwords<kTail>(first + T::kQh, stride, count);
  finish_tile<T>(d, m, p, qh, t);
}

// The same tile from its packed form.
template <class T>
DSPARK_AVX512_INLINE void load_packed_tile(const uint8_t* tile, Tile& t) {
  using P = packed::Tile<T>;
  const auto load256 = [&](int at) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + at));
  };
  const __m512 d = _mm512_cvtph_ps(load256(P::kD));
  __m512 m = _mm512_setzero_ps();
  if constexpr (T::kMin) m = _mm512_cvtph_ps(load256(P::kM));
  __m512i p[8];
  for (int k = 0; k < P::kQsDwords; ++k) p[k] = _mm512_loadu_si512(tile + P::kQs + 64 * k);
  __m512i qh = _mm512_setzero_si512();
  if constexpr (T::kQh >= 0) qh = _mm512_loadu_si512(tile + P::kQh);
  finish_tile<T>(d, m, p, qh, t);
}

// The dword at p in every lane (one broadcast load).
DSPARK_AVX512_INLINE __m512i broadcast_dword(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Tile of block `b` for NT tokens: integer dot products per row (the format's offset removed
// through the prepared activation term), then the row scales. The integer part may be ordered
// freely (it is exact); the float part is the same instruction sequence for every token and
// batch size.
template <class T, int NT>
DSPARK_AVX512_INLINE void tile_tokens(const Tile& t, const QuantizedActs& acts, int64_t t0,
                                      int64_t b, __m512 acc[NT]) {
  __m512i isum[NT], isum2[NT];
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    isum[i] = T::kShift > 0 ? _mm512_set1_epi32(acts.sums_row(t0 + i)[b]) : _mm512_setzero_si512();
    isum2[i] = _mm512_setzero_si512();
  }
  // Tokens interleaved so that NT independent chains keep the vpdpbusd units busy; a single
  // token splits its chain in two.
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      const __m512i a = broadcast_dword(acts.qs_row(t0 + i) + b * kQK + 4 * k);
      if (NT == 1 && (k & 1)) {
        isum2[i] = _mm512_dpbusd_epi32(isum2[i], t.w[k], a);
      } else {
        isum[i] = _mm512_dpbusd_epi32(isum[i], t.w[k], a);
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    if (NT == 1) isum[i] = _mm512_add_epi32(isum[i], isum2[i]);
    const float* da = acts.d_row(t0 + i) + 2 * b;
    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(t.d, _mm512_set1_ps(da[0])),
                             acc[i]);
    if constexpr (T::kMin) acc[i] = _mm512_fmadd_ps(t.m, _mm512_set1_ps(da[1]), acc[i]);
  }
}

// Where a group's tiles come from.
enum class Source {
  Packed,  // packed at load: tiles back to back
  File,    // 16 rows in the file's layout
  Tail,    // fewer than 16 rows in the file's layout (zeros for the others)
};

// Weights stream from memory once: ask for the lines ahead of the tile in use (the hardware
// prefetcher restarts on every short row range a task covers). In the file's layout a group's
// blocks are back to back, so block b of the next group is asked for with block b of this one.
template <class T, Source kSource>
DSPARK_AVX512_INLINE void prefetch(const uint8_t* group, uint64_t group_bytes, int64_t b) {
  constexpr int kTileBytes = kGroupRows * T::kBytes;
  if constexpr (kSource == Source::Packed) {
    avx512::prefetch_ahead(group + b * kTileBytes, kPrefetchBytes, kTileBytes);
  } else if constexpr (kSource == Source::File) {
    avx512::prefetch_ahead(group + b * kTileBytes, int(group_bytes), kTileBytes);
  }
}

// Rows [r0, r0 + count) (count = 16 unless kSource is Tail) for NT tokens from t0.
template <class T, int NT, Source kSource>
void group_tokens(const MatmulArgs& args, int64_t r0, int count, int64_t t0) {
  const int64_t nb = args.cols / kQK;
  const uint64_t group_bytes = kGroupRows * args.row_bytes;
  const uint8_t* group = kSource == Source::Packed ? args.packed + (r0 / kGroupRows) * group_bytes
                                                   : args.w + r0 * args.row_bytes;
  __m512 acc[NT];
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) acc[i] = _mm512_setzero_ps();
  Tile tile;
  for (int64_t b = 0; b < nb; ++b) {
    prefetch<T, kSource>(group, group_bytes, b);
    if constexpr (kSource == Source::Packed) {
      load_packed_tile<T>(group + b * packed::Tile<T>::kBytes, tile);
    } else {
      load_tile<T, kSource == Source::Tail>(group + b * T::kBytes, args.row_bytes, count, tile);
    }
    tile_tokens<T, NT>(tile, args.acts, t0, b, acc);
  }
  const __mmask16 present = __mmask16((1u << count) - 1);
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    _mm512_mask_storeu_ps(args.y + (t0 + i) * args.y_stride + r0, present, acc[i]);
  }
}

// Packed tiles exist for every whole group of 16 rows from row 0.
template <class T, int NT>
void group_any(const MatmulArgs& args, int64_t r0, int count, int64_t t0) {
  if (count < kGroupRows) {
    group_tokens<T, NT, Source::Tail>(args, r0, count, t0);
  } else if (args.packed != nullptr && r0 % kGroupRows == 0) {
    group_tokens<T, NT, Source::Packed>(args, r0, count, t0);
  } else {
    group_tokens<T, NT, Source::File>(args, r0, count, t0);
  }
}

template <class T>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t rb = r0; rb < r1; rb += kGroupRows) {
    const int count = int(rb + kGroupRows < r1 ? kGroupRows : r1 - rb);
    for (int64_t t = t0; t < t1; t += 8) {
      avx512::with_token_count(t1 - t,
                               [&](auto nt) { group_any<T, nt.value>(args, rb, count, t); });
    }
  }
}

// Activations in value order (as the natural-order quantizer), with per-block terms prepared
// for the format: d[2 b] = the block's scale, d[2 b + 1] = scale * sum of its values (the min
// formats' term), sums[b] = -(sum << kShift) (the offset of the formats that subtract one,
// added to the integer dot product).
template <int kShift>
void quantize_rows(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  const int64_t nb = cols / kQK;
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * kQK), x1 = _mm512_loadu_ps(x + b * kQK + 16);
    const float amax =
        _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 =
        _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(x0, vid)), lo), hi);
    const __m512i q1 =
        _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(x1, vid)), lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK + 16), _mm512_cvtepi32_epi8(q1));
    const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    d[2 * b] = amax / 127.0f;
    d[2 * b + 1] = d[2 * b] * float(sum);
    sums[b] = -sum * (1 << kShift);
  }
}

ActLengths lengths_rows(int64_t cols) {
  return {cols, 2 * (cols / kQK), cols / kQK};
}

template <class T>
MatmulKernel make() {
  return {rows<T>, {quantize_rows<T::kShift>, lengths_rows}};
}

}  // namespace

MatmulKernel avx512_q4_0() {
  return make<Q4_0>();
}
MatmulKernel avx512_q4_1() {
  return make<Q4_1>();
}
MatmulKernel avx512_q5_0() {
  return make<Q5_0>();
}
MatmulKernel avx512_q5_1() {
  return make<Q5_1>();
}
MatmulKernel avx512_q8_0() {
  return make<Q8_0>();
}

}  // namespace dspark::cpu
