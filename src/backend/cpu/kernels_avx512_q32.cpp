// AVX-512 VNNI kernels for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
//
// A tile is 16 consecutive blocks of a row, transposed so that int32 lane L holds block
// sigma(L): eight vpdpbusd then leave each block's full integer dot product in its own lane,
// and one multiply-add applies the 16 block scales. The unpacking and transpose are paid once
// per row and tile for up to 8 tokens; each token then costs its eight dot products and a few
// float operations. The activations are quantized into the same transposed order. Weights are
// the unsigned operand (nibbles as they are, Q8_0 biased by 128); the formats' offsets come
// back through the per-block activation sums.
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

constexpr int kTile = 16;                // blocks per tile
constexpr int kTileBytes = kTile * kQK;  // activation bytes per tile
constexpr int kPrefetchBytes = 8192;     // how far ahead of the current tile to prefetch
// Lane L of a tile holds block sigma(L) (the order the 4x4 unpack transpose leaves); sigma is
// its own inverse, so block j sits in lane sigma(j).
using avx512::sigma;

// Block layouts: bytes per block, offsets of the nibbles / int8 values and of the fifth bits,
// and log2 of the offset subtracted from q (0: none).
struct Q4_0 {
  static constexpr int kBytes = 18, kQs = 2, kQh = -1, kShift = 3;
  static constexpr bool kMin = false, kQ8 = false;
};
struct Q4_1 {
  static constexpr int kBytes = 20, kQs = 4, kQh = -1, kShift = 0;
  static constexpr bool kMin = true, kQ8 = false;
};
struct Q5_0 {
  static constexpr int kBytes = 22, kQs = 6, kQh = 2, kShift = 4;
  static constexpr bool kMin = false, kQ8 = false;
};
struct Q5_1 {
  static constexpr int kBytes = 24, kQs = 8, kQh = 4, kShift = 0;
  static constexpr bool kMin = true, kQ8 = false;
};
struct Q8_0 {
  static constexpr int kBytes = 34, kQs = 2, kQh = -1, kShift = 7;
  static constexpr bool kMin = false, kQ8 = true;
};

struct Tile {
  __m512i w[8];  // w[k] lane L: values 4k..4k+3 of block sigma(L), unsigned bytes
  __m512 d;      // lane L: scale of block sigma(L)
  __m512 m;      // lane L: min of block sigma(L) (Q4_1 / Q5_1)
};

// 16 bytes at p, or zeros for a block past the row's end.
template <bool kTail>
DSPARK_AVX512_INLINE __m128i load16(const uint8_t* p, bool valid) {
  if (kTail && !valid) return _mm_setzero_si128();
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// z[g] 128-bit lane i = the 16-byte chunk at `base + (4 g + i) * stride`, zero for a block past
// the row's end (count blocks present).
template <bool kTail>
DSPARK_AVX512_INLINE void load_chunks(const uint8_t* base, int stride, int count, __m512i z[4]) {
  for (int g = 0; g < 4; ++g) {
    const uint8_t* b = base + 4 * g * stride;
    __m512i v = _mm512_castsi128_si512(load16<kTail>(b, 4 * g < count));
    v = _mm512_inserti32x4(v, load16<kTail>(b + stride, 4 * g + 1 < count), 1);
    v = _mm512_inserti32x4(v, load16<kTail>(b + 2 * stride, 4 * g + 2 < count), 2);
    z[g] = _mm512_inserti32x4(v, load16<kTail>(b + 3 * stride, 4 * g + 3 < count), 3);
  }
}

// p[k] lane L = dword k of the 16-byte chunk of block sigma(L).
template <bool kTail>
DSPARK_AVX512_INLINE void load_transposed(const uint8_t* base, int stride, int count,
                                          __m512i p[4]) {
  __m512i z[4];
  load_chunks<kTail>(base, stride, count, z);
  avx512::transpose_4x4_lanes(z, p);
}

// Lane L = the first dword of block sigma(L)'s chunk: the first output of the transpose only.
template <bool kTail>
DSPARK_AVX512_INLINE __m512i load_dwords(const uint8_t* base, int stride, int count) {
  __m512i z[4];
  load_chunks<kTail>(base, stride, count, z);
  return _mm512_unpacklo_epi64(_mm512_unpacklo_epi32(z[0], z[1]),
                               _mm512_unpacklo_epi32(z[2], z[3]));
}

template <class T, bool kTail>
DSPARK_AVX512_INLINE void load_tile(const uint8_t* base, int count, Tile& t) {
  // Weights stream from memory: ask for the lines a few tiles ahead (the hardware prefetcher
  // restarts on every short row range a task covers).
  avx512::prefetch_ahead(base, kPrefetchBytes, kTile * T::kBytes);
  // The first dword of every block holds d (and m for the formats with a min); every block is
  // at least 16 bytes long, so the 16-byte loads stay inside it.
  const __m512i head = load_dwords<kTail>(base, T::kBytes, count);
  t.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head));
  if constexpr (T::kMin) {
    t.m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head, 16)));
  }
  if constexpr (T::kQ8) {
    __m512i p[4];
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    for (int h = 0; h < 2; ++h) {
      load_transposed<kTail>(base + T::kQs + 16 * h, T::kBytes, count, p);
      for (int k = 0; k < 4; ++k) t.w[4 * h + k] = _mm512_xor_si512(p[k], bias);
    }
  } else {
    __m512i p[4];
    load_transposed<kTail>(base + T::kQs, T::kBytes, count, p);
    const __m512i low = _mm512_set1_epi8(0x0F);
    for (int k = 0; k < 4; ++k) {
      t.w[k] = _mm512_and_si512(p[k], low);
      t.w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(p[k], 4), low);
    }
    if constexpr (T::kQh >= 0) {
      // Fifth bits: value 4k + j of a block is bit 4k + j of its qh word. Replicate byte k/2
      // of each word over the word, then test one bit per byte.
      const __m512i qh = load_dwords<kTail>(base + T::kQh, T::kBytes, count);
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

// One tile for NT tokens: integer dot products per block (the format's offset removed via the
// activation sums), then the block scales. The integer part may be ordered freely (it is
// exact); the float part is the same instruction sequence for every token and batch size.
template <class T, int NT>
DSPARK_AVX512_INLINE void tile_tokens(const Tile& t, const QuantizedActs& acts, int64_t t0,
                                      int64_t g, __m512 acc[NT]) {
  __m512i isum[NT], isum2[NT];
#pragma GCC unroll 8
  for (int i = 0; i < NT; ++i) {
    isum[i] = _mm512_setzero_si512();
    if constexpr (T::kShift > 0) {
      const __m512i s = _mm512_loadu_si512(acts.sums_row(t0 + i) + g * kTile);
      isum[i] = _mm512_sub_epi32(isum[i], _mm512_slli_epi32(s, T::kShift));
    }
    isum2[i] = _mm512_setzero_si512();
  }
  // Tokens interleaved so that NT independent chains keep the vpdpbusd units busy; a single
  // token splits its chain in two.
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      const __m512i a = _mm512_loadu_si512(acts.qs_row(t0 + i) + g * kTileBytes + 64 * k);
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
    const __m512 dav = _mm512_loadu_ps(acts.d_row(t0 + i) + g * kTile);
    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(t.d, dav), acc[i]);
    if constexpr (T::kMin) {
      const __m512i s = _mm512_loadu_si512(acts.sums_row(t0 + i) + g * kTile);
      acc[i] = _mm512_fmadd_ps(t.m, _mm512_mul_ps(dav, _mm512_cvtepi32_ps(s)), acc[i]);
    }
  }
}

// A row's last blocks that do not fill a tile: up to kNaturalTail of them cost less one by one
// (in value order, 8 lanes per block) than as a zero-padded tile; more go in a padded tile.
// The choice depends only on the column count, so every batch makes the same one.
constexpr int kNaturalTail = 4;
constexpr bool natural_tail(int rem) {
  return rem > 0 && rem <= kNaturalTail;
}

// One block's 32 weights as unsigned bytes in value order (as in a tile), its scale and min.
template <class T>
DSPARK_AVX512_INLINE __m256i load_block(const uint8_t* blk, float* d, float* m) {
  uint16_t head[2];
  std::memcpy(head, blk, 4);
  *d = _cvtsh_ss(head[0]);
  if constexpr (T::kMin) *m = _cvtsh_ss(head[1]);
  if constexpr (T::kQ8) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + T::kQs)),
                            _mm256_set1_epi8(char(0x80)));
  } else {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + T::kQs));
    const __m128i low = _mm_set1_epi8(0x0F);
    __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), low), _mm_and_si128(x, low));
    if constexpr (T::kQh >= 0) {
      uint32_t qh;
      std::memcpy(&qh, blk + T::kQh, 4);
      w = _mm256_mask_add_epi8(w, __mmask32(qh), w, _mm256_set1_epi8(16));
    }
    return w;
  }
}

// Two blocks of a natural tail in one register: lanes 0-7 take block 2p's partial dot products,
// lanes 8-15 block 2p + 1's (zeros past the row's end).
struct TailPair {
  __m512i w;  // the two blocks' unsigned weights in value order
  __m512 d;   // lanes 0-7: scale of block 2p; lanes 8-15: of block 2p + 1
  __m512 m;   // lane 0: min of block 2p; lane 8: of block 2p + 1; other lanes zero
};

template <class T>
DSPARK_AVX512_INLINE TailPair load_tail_pair(const uint8_t* first /*block 2p*/, int count) {
  float d[2] = {0.0f, 0.0f}, m[2] = {0.0f, 0.0f};
  __m256i w[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int j = 0; j < count; ++j) w[j] = load_block<T>(first + j * T::kBytes, &d[j], &m[j]);
  TailPair p;
  p.w = _mm512_inserti64x4(_mm512_castsi256_si512(w[0]), w[1], 1);
  p.d = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d[0])), _mm256_set1_ps(d[1]), 1);
  p.m = _mm512_setr_ps(m[0], 0, 0, 0, 0, 0, 0, 0, m[1], 0, 0, 0, 0, 0, 0, 0);
  return p;
}

// Adds the natural tail of a row (rem blocks after `full` tiles) to NT tokens' accumulators,
// a pair of blocks per step. The activations' two scales and sums of a pair are spread over
// their lanes by one permute each.
template <class T, int NT>
DSPARK_AVX512_INLINE void natural_tail_tokens(const uint8_t* row, int64_t full, int rem,
                                              const QuantizedActs& acts, int64_t t0,
                                              __m512 acc[NT]) {
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int p = 0; 2 * p < rem; ++p) {
    const int count = rem - 2 * p < 2 ? 1 : 2;
    const TailPair pair = load_tail_pair<T>(row + (full * kTile + 2 * p) * T::kBytes, count);
    const int64_t slot = full * kTile + 2 * p;  // index of block 2p's scale and sum
#pragma GCC unroll 8
    for (int i = 0; i < NT; ++i) {
      // Masked loads: only the pair's two entries are read.
      const __m512i s = _mm512_permutexvar_epi32(
          spread, _mm512_maskz_loadu_epi32(0x3, acts.sums_row(t0 + i) + slot));
      const __m512 da =
          _mm512_permutexvar_ps(spread, _mm512_maskz_loadu_ps(0x3, acts.d_row(t0 + i) + slot));
      __m512i isum = _mm512_setzero_si512();
      if constexpr (T::kShift > 0) {
        isum = _mm512_maskz_sub_epi32(0x0101, isum, _mm512_slli_epi32(s, T::kShift));
      }
      const int8_t* a = acts.qs_row(t0 + i) + full * kTileBytes + 2 * kQK * p;
      isum = _mm512_dpbusd_epi32(isum, pair.w, _mm512_loadu_si512(a));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(pair.d, da), acc[i]);
      if constexpr (T::kMin) {
        acc[i] = _mm512_fmadd_ps(pair.m, _mm512_mul_ps(da, _mm512_cvtepi32_ps(s)), acc[i]);
      }
    }
  }
}

// Rows [r0, r1) (at most kMaxRows) for NT tokens from t0. With several tokens, columns go in
// chunks of kChunkTiles tiles so that the chunk's activations (at most 8 tokens x 4096 bytes)
// stay in L1 while every row of the block passes over them; the per-(row, token) accumulators
// wait in memory between chunks, which leaves their sequence of operations unchanged.
constexpr int64_t kMaxRows = 16;
constexpr int64_t kChunkTiles = 8;

template <class T, int NT>
void block_tokens(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0) {
  const int64_t nb = args.cols / kQK;
  const int64_t full = nb / kTile;
  const int rem = int(nb % kTile);
  const bool natural = natural_tail(rem);
  const int64_t n_tiles = full + (rem > 0 && !natural ? 1 : 0);
  __m512 saved[kMaxRows][NT];
  for (int64_t r = 0; r < r1 - r0; ++r) {
    for (int i = 0; i < NT; ++i) saved[r][i] = _mm512_setzero_ps();
  }
  Tile tile;
  const int64_t chunk = NT == 1 || n_tiles == 0 ? n_tiles + 1 : kChunkTiles;
  for (int64_t c0 = 0; c0 == 0 || c0 < n_tiles; c0 += chunk) {
    const int64_t c1 = c0 + chunk < n_tiles ? c0 + chunk : n_tiles;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = args.w + r * args.row_bytes;
      __m512 acc[NT];
#pragma GCC unroll 8
      for (int i = 0; i < NT; ++i) acc[i] = saved[r - r0][i];
      for (int64_t g = c0; g < c1; ++g) {
        if (g < full) {
          load_tile<T, false>(row + g * kTile * T::kBytes, kTile, tile);
        } else {
          load_tile<T, true>(row + g * kTile * T::kBytes, rem, tile);
        }
        tile_tokens<T, NT>(tile, args.acts, t0, g, acc);
      }
      if (natural && c1 == n_tiles) natural_tail_tokens<T, NT>(row, full, rem, args.acts, t0, acc);
#pragma GCC unroll 8
      for (int i = 0; i < NT; ++i) saved[r - r0][i] = acc[i];
    }
  }
  avx512::store_row_sums<NT>(saved, r1 - r0, args.y + t0 * args.y_stride + r0, args.y_stride);
}

template <class T>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t rb = r0; rb < r1; rb += kMaxRows) {
    const int64_t re = rb + kMaxRows < r1 ? rb + kMaxRows : r1;
    for (int64_t t = t0; t < t1; t += 8) {
      switch (t1 - t >= 8 ? 8 : int(t1 - t)) {
        case 1:
          block_tokens<T, 1>(args, rb, re, t);
          break;
        case 2:
          block_tokens<T, 2>(args, rb, re, t);
          break;
        case 3:
          block_tokens<T, 3>(args, rb, re, t);
          break;
        case 4:
          block_tokens<T, 4>(args, rb, re, t);
          break;
        case 5:
          block_tokens<T, 5>(args, rb, re, t);
          break;
        case 6:
          block_tokens<T, 6>(args, rb, re, t);
          break;
        case 7:
          block_tokens<T, 7>(args, rb, re, t);
          break;
        default:
          block_tokens<T, 8>(args, rb, re, t);
          break;
      }
    }
  }
}

// Activations in tile order: per tile of 16 blocks, 8 x 64 bytes (dword k of block j in lane
// sigma(j)), then 16 scales and 16 sums in lane order. A natural tail follows in value order
// (32 bytes, one scale and one sum per block); a longer partial tile is zero-padded. Values
// equal the natural-order quantizer's.
void quantize_tiled(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  const int64_t nb = cols / kQK;
  const int64_t full = nb / kTile;
  const bool natural = natural_tail(int(nb % kTile));
  const int64_t n_tiles = (nb + kTile - 1) / kTile;
  std::memset(qs, 0, size_t(n_tiles * kTileBytes));
  std::memset(d, 0, size_t(n_tiles * kTile) * sizeof(float));
  std::memset(sums, 0, size_t(n_tiles * kTile) * sizeof(int32_t));
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
    alignas(16) int8_t bytes[kQK];
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes), _mm512_cvtepi32_epi8(q0));
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes + 16), _mm512_cvtepi32_epi8(q1));
    const int64_t tile = b / kTile;
    int64_t slot;  // index of this block's scale and sum
    if (natural && tile == full) {
      const int64_t j = b % kTile;
      std::memcpy(qs + full * kTileBytes + kQK * j, bytes, kQK);
      slot = full * kTile + j;
    } else {
      const int lane = sigma(int(b % kTile));
      int8_t* dst = qs + tile * kTileBytes + 4 * lane;
      for (int k = 0; k < 8; ++k) std::memcpy(dst + 64 * k, bytes + 4 * k, 4);
      slot = tile * kTile + lane;
    }
    d[slot] = amax / 127.0f;
    sums[slot] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

ActLengths lengths_tiled(int64_t cols) {
  const int64_t n_tiles = (cols / kQK + kTile - 1) / kTile;
  return {n_tiles * kTileBytes, n_tiles * kTile, n_tiles * kTile};
}

template <class T>
MatmulKernel make() {
  return {rows<T>, {quantize_tiled, lengths_tiled}};
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
