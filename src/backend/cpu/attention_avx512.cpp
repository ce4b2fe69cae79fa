// AVX-512 attention kernels and the fp16 K/V store.
//  - attend_chunk (head_dim 64/128/256): one 256-key chunk of a token's list for the query heads
//    of a kv head; scores 16 keys at a time (K block converted once, one 16-way transposing
//    reduction instead of 16 horizontal sums), softmax in fp32, V accumulated in registers.
//  - attend_group (other head dims): the whole list, two passes with per-key reductions.
// Per head the operation order is fixed by its own key list, so results depend neither on the
// group, the batch nor the thread count.
#include "attention.h"

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx2")
#include "avx512_math.h"

#define DSPARK_ATTN_INLINE inline __attribute__((always_inline))

namespace dspark::cpu {
namespace {

DSPARK_ATTN_INLINE __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << remaining) - 1);
}

// fp16 row[n] -> fp32 out[n rounded up to 16] (tail lanes zero).
void convert_row(const uint16_t* row, int64_t n, float* out) {
  for (int64_t d = 0; d < n; d += 16) {
    const __m256i h = _mm256_maskz_loadu_epi16(tail_mask(n - d), row + d);
    _mm512_storeu_ps(out + d, _mm512_cvtph_ps(h));
  }
}

}  // namespace

void attend_group_avx512(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head,
                         float* scratch) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t hd = a.head_dim;
  const int64_t hd16 = (hd + 15) / 16 * 16;
  const int64_t n_keys = keys.n;
  const int64_t row = a.n_kv_heads * hd;
  const int64_t h0 = kv_head * group;
  // scratch: [group, n_keys] scores, one converted K/V row [hd16], the group's queries and
  // accumulators [group, hd16] each, and 1/sum per head [group].
  float* scores = scratch;
  float* kv = scores + group * n_keys;
  float* qs = kv + hd16;
  float* acc = qs + group * hd16;
  float* inv_sum = acc + group * hd16;
  for (int64_t g = 0; g < group; ++g) {
    const float* q = a.q + (t * a.n_heads + h0 + g) * hd;
    for (int64_t d = 0; d < hd16; d += 16) {
      _mm512_storeu_ps(qs + g * hd16 + d, _mm512_maskz_loadu_ps(tail_mask(hd - d), q + d));
      _mm512_storeu_ps(acc + g * hd16 + d, _mm512_setzero_ps());
    }
  }
  const __m512 scale = _mm512_set1_ps(a.scale);
  for (int64_t j = 0; j < n_keys; ++j) {
    convert_row(a.k_cache + keys.slots[j] * row + kv_head * hd, hd, kv);
    for (int64_t g = 0; g < group; ++g) {
      __m512 s = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd16; d += 16) {
        s = _mm512_fmadd_ps(_mm512_loadu_ps(qs + g * hd16 + d), _mm512_loadu_ps(kv + d), s);
      }
      scores[g * n_keys + j] = avx512::hsum_ps(_mm512_mul_ps(s, scale));
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* s = scores + g * n_keys;
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    for (int64_t j = 0; j < n_keys; j += 16) {
      const __m512 v =
          _mm512_mask_loadu_ps(_mm512_set1_ps(-__builtin_inff()), tail_mask(n_keys - j), s + j);
      mx = _mm512_max_ps(mx, v);
    }
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n_keys; j += 16) {
      const __mmask16 k = tail_mask(n_keys - j);
      const __m512 p =
          _mm512_maskz_mov_ps(k, avx512::exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m)));
      _mm512_mask_storeu_ps(s + j, k, p);
      sum = _mm512_add_ps(sum, p);
    }
    inv_sum[g] = n_keys > 0 ? 1.0f / avx512::hsum_ps(sum) : 0.0f;
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    convert_row(a.v_cache + keys.slots[j] * row + kv_head * hd, hd, kv);
    for (int64_t g = 0; g < group; ++g) {
      const __m512 p = _mm512_set1_ps(scores[g * n_keys + j]);
      float* o = acc + g * hd16;
      for (int64_t d = 0; d < hd16; d += 16) {
        _mm512_storeu_ps(o + d,
                         _mm512_fmadd_ps(p, _mm512_loadu_ps(kv + d), _mm512_loadu_ps(o + d)));
      }
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* out = a.out + (t * a.n_heads + h0 + g) * hd;
    const __m512 inv = _mm512_set1_ps(inv_sum[g]);
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512 o = _mm512_mul_ps(_mm512_loadu_ps(acc + g * hd16 + d), inv);
      _mm512_mask_storeu_ps(out + d, tail_mask(hd - d), o);
    }
  }
}

void store_kv_f16_avx512(const float* kv, const int32_t* slots, int64_t n_tok, int64_t row_elems,
                         uint16_t* cache) {
  for (int64_t t = 0; t < n_tok; ++t) {
    uint16_t* dst = cache + int64_t(slots[t]) * row_elems;
    const float* src = kv + t * row_elems;
    for (int64_t i = 0; i < row_elems; i += 16) {
      const __mmask16 k = tail_mask(row_elems - i);
      const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, src + i),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm256_mask_storeu_epi16(dst + i, k, h);
    }
  }
}

namespace {

// s[j] = sum of the lanes of v[j] for 16 vectors, as one vector in order (45 instructions
// instead of 16 horizontal reductions).
DSPARK_ATTN_INLINE __m512 reduce16(const __m512 v[16]) {
  __m512 t[8], u[4];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // u[i] 128-bit lane L: lane-L partial sums of keys 4i..4i+3; add the four lanes.
  const __m512 y01 =
      _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
  const __m512 y23 =
      _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y01, y23, 0x88), _mm512_shuffle_f32x4(y01, y23, 0xDD));
}

// Keys ahead of the one in use whose V row is asked for (the PV loop is short per key).
constexpr int64_t kPrefetchKeys = 8;

// Asks for the cache lines of one fp16 row of hd values.
DSPARK_ATTN_INLINE void prefetch_row(const uint16_t* p, int64_t hd) {
  for (int64_t at = 0; at < hd; at += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(p + at), _MM_HINT_T0);
  }
}

template <int HD16>
void attend_chunk(const AttentionArgs& a, int64_t t, KeyList keys, int64_t kv_head, float* scratch,
                  float* partial) {
  constexpr int64_t hd = 16 * HD16;
  // Heads whose V accumulators fit in 16 registers together.
  constexpr int kSub = HD16 >= 16 ? 1 : 16 / HD16;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t row = a.n_kv_heads * hd;
  const int64_t nk = keys.n;
  const int32_t* slots = keys.slots;
  const float* q = a.q + (t * a.n_heads + kv_head * group) * hd;
  float* kbuf = scratch;              // [16, hd]: a block of keys in fp32
  float* scores = scratch + 16 * hd;  // [group, kKeyChunk]
  const __m512 scale = _mm512_set1_ps(a.scale);

  for (int64_t j0 = 0; j0 < nk; j0 += 16) {
    const int64_t nb = nk - j0 < 16 ? nk - j0 : 16;
    for (int64_t j = 0; j < 16; ++j) {
      // The rows are gathered by slot, which the hardware prefetcher cannot follow: ask for the
      // next block's row now, a block of work ahead of its use.
      if (j0 + 16 + j < nk) {
        prefetch_row(a.k_cache + int64_t(slots[j0 + 16 + j]) * row + kv_head * hd, hd);
      }
      const uint16_t* k = a.k_cache + int64_t(slots[j0 + (j < nb ? j : 0)]) * row + kv_head * hd;
      for (int c = 0; c < HD16; ++c) {
        const __m512 v =
            j < nb
                ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 16 * c)))
                : _mm512_setzero_ps();
        _mm512_storeu_ps(kbuf + j * hd + 16 * c, v);
      }
    }
    for (int64_t h = 0; h < group; ++h) {
      const float* qh = q + h * hd;
      __m512 part[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        __m512 s = _mm512_mul_ps(_mm512_loadu_ps(qh), _mm512_loadu_ps(kbuf + j * hd));
#pragma GCC unroll 16
        for (int c = 1; c < HD16; ++c) {
          s = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * c), _mm512_loadu_ps(kbuf + j * hd + 16 * c),
                              s);
        }
        part[j] = s;
      }
      _mm512_mask_storeu_ps(scores + h * kKeyChunk + j0, tail_mask(nb),
                            _mm512_mul_ps(reduce16(part), scale));
    }
  }

  for (int64_t h = 0; h < group; ++h) {
    float* s = scores + h * kKeyChunk;
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    for (int64_t j = 0; j < nk; j += 16) {
      mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(nk - j), s + j));
    }
    const float m = _mm512_reduce_max_ps(mx);
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; j += 16) {
      const __mmask16 k = tail_mask(nk - j);
      const __m512 p = _mm512_maskz_mov_ps(
          k, avx512::exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm)));
      _mm512_mask_storeu_ps(s + j, k, p);
      sum = _mm512_add_ps(sum, p);
    }
    float* out = partial + h * (2 + hd);
    out[0] = m;
    out[1] = _mm512_reduce_add_ps(sum);
  }

  for (int64_t h0 = 0; h0 < group; h0 += kSub) {
    const int64_t ns = group - h0 < kSub ? group - h0 : kSub;
    __m512 o[kSub][HD16];
    for (int s = 0; s < kSub; ++s) {
      for (int c = 0; c < HD16; ++c) o[s][c] = _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < nk; ++j) {
      if (j + kPrefetchKeys < nk) {
        prefetch_row(a.v_cache + int64_t(slots[j + kPrefetchKeys]) * row + kv_head * hd, hd);
      }
      const uint16_t* v = a.v_cache + int64_t(slots[j]) * row + kv_head * hd;
      __m512 p[kSub];
#pragma GCC unroll 16
      for (int s = 0; s < kSub; ++s) {
        p[s] = _mm512_set1_ps(s < ns ? scores[(h0 + s) * kKeyChunk + j] : 0.0f);
      }
#pragma GCC unroll 16
      for (int c = 0; c < HD16; ++c) {
        const __m512 vc =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 16 * c)));
#pragma GCC unroll 16
        for (int s = 0; s < kSub; ++s) o[s][c] = _mm512_fmadd_ps(p[s], vc, o[s][c]);
      }
    }
    for (int64_t s = 0; s < ns; ++s) {
      float* out = partial + (h0 + s) * (2 + hd) + 2;
      for (int c = 0; c < HD16; ++c) _mm512_storeu_ps(out + 16 * c, o[s][c]);
    }
  }
}

}  // namespace

bool attend_chunked_avx512_supports(int64_t head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 256;
}

int64_t attend_chunk_scratch_floats(const AttentionArgs& a) {
  return 16 * a.head_dim + (a.n_heads / a.n_kv_heads) * kKeyChunk;
}

void attend_chunk_avx512(const AttentionArgs& a, int64_t t, KeyList chunk, int64_t kv_head,
                         float* scratch, float* partial) {
  switch (a.head_dim) {
    case 64:
      attend_chunk<4>(a, t, chunk, kv_head, scratch, partial);
      break;
    case 128:
      attend_chunk<8>(a, t, chunk, kv_head, scratch, partial);
      break;
    default:
      attend_chunk<16>(a, t, chunk, kv_head, scratch, partial);
      break;
  }
}

}  // namespace dspark::cpu
