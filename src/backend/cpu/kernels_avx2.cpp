// AVX2 + FMA + F16C kernels (the path for CPUs without AVX-512 VNNI), natural value order (the
// 32-element formats' whole 16-row groups go to the tile kernels of kernels_avx2_packed.cpp,
// their natural-order kernel reads the rows after the last whole group; the K-quants are all
// tiles, kernels_avx2_kquant.cpp).
// Quantized weights: per block, unpack to bytes once, then for each token vpmaddubsw (unsigned
// weights x signed activations; signed weights through the sign trick) and vpmaddwd to int32,
// one float multiply-add per block. Float weights: 8-wide fp32 multiply-adds, two accumulators.
// Each token's instruction sequence is the same however many tokens share the call.
#include <cstdint>
#include <cstring>

#include "kernels.h"

#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include "avx2_math.h"

namespace dspark::cpu {
namespace {

constexpr int kMaxTokens = 4;  // tokens per pass over a row (register budget)

inline float fp16(uint16_t h) {
  return _cvtsh_ss(h);
}

using avx2::hsum_ps;

inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 16 packed nibble bytes -> 32 bytes: low nibbles first, then high nibbles.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i low = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), low), _mm_and_si128(x, low));
}

// 0x10 in byte j where bit j of the 32-bit word is set.
inline __m256i fifth_bits(uint32_t h) {
  const __m256i bytes = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(h)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

inline __m256i sum_pairs(__m256i p16) {
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// Weights of one 32-value block as bytes: unsigned (q, or q with its fifth bit) or signed
// (offset removed, used through the sign trick), plus the block scale and min.
struct Block32 {
  __m256i q;
  float d, m;
};
struct Q4_0 {
  static constexpr bool kSigned = true, kMin = false;
  static void load(const uint8_t* p, Block32& b) {
    const auto& x = *reinterpret_cast<const BlockQ4_0*>(p);
    b.q = _mm256_sub_epi8(unpack_nibbles(x.qs), _mm256_set1_epi8(8));
    b.d = fp16(x.d);
  }
};
struct Q4_1 {
  static constexpr bool kSigned = false, kMin = true;
  static void load(const uint8_t* p, Block32& b) {
    const auto& x = *reinterpret_cast<const BlockQ4_1*>(p);
    b.q = unpack_nibbles(x.qs);
    b.d = fp16(x.d);
    b.m = fp16(x.m);
  }
};
struct Q5_0 {
  static constexpr bool kSigned = true, kMin = false;
  static void load(const uint8_t* p, Block32& b) {
    const auto& x = *reinterpret_cast<const BlockQ5_0*>(p);
    uint32_t h;
    std::memcpy(&h, x.qh, 4);
    b.q =
        _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(x.qs), fifth_bits(h)), _mm256_set1_epi8(16));
    b.d = fp16(x.d);
  }
};
struct Q5_1 {
  static constexpr bool kSigned = false, kMin = true;
  static void load(const uint8_t* p, Block32& b) {
    const auto& x = *reinterpret_cast<const BlockQ5_1*>(p);
    uint32_t h;
    std::memcpy(&h, x.qh, 4);
    b.q = _mm256_or_si256(unpack_nibbles(x.qs), fifth_bits(h));
    b.d = fp16(x.d);
    b.m = fp16(x.m);
  }
};
struct Q8_0 {
  static constexpr bool kSigned = true, kMin = false;
  static void load(const uint8_t* p, Block32& b) {
    const auto& x = *reinterpret_cast<const BlockQ8_0*>(p);
    b.q = load32(x.qs);
    b.d = fp16(x.d);
  }
};
template <class T>
constexpr int kBytes = 0;
template <>
constexpr int kBytes<Q4_0> = sizeof(BlockQ4_0);
template <>
constexpr int kBytes<Q4_1> = sizeof(BlockQ4_1);
template <>
constexpr int kBytes<Q5_0> = sizeof(BlockQ5_0);
template <>
constexpr int kBytes<Q5_1> = sizeof(BlockQ5_1);
template <>
constexpr int kBytes<Q8_0> = sizeof(BlockQ8_0);

template <class T, int NT>
void row_q32(const MatmulArgs& args, int64_t r, int64_t t0) {
  const uint8_t* row = args.w + r * args.row_bytes;
  const int64_t nb = args.cols / kQK;
  const QuantizedActs& acts = args.acts;
  __m256 acc[NT];
  float mins[NT];
  for (int i = 0; i < NT; ++i) {
    acc[i] = _mm256_setzero_ps();
    mins[i] = 0.0f;
  }
  Block32 w;
  for (int64_t b = 0; b < nb; ++b) {
    T::load(row + b * kBytes<T>, w);
    const __m256i wabs = T::kSigned ? _mm256_sign_epi8(w.q, w.q) : w.q;
#pragma GCC unroll 4
    for (int i = 0; i < NT; ++i) {
      __m256i a = load32(acts.qs_row(t0 + i) + b * kQK);
      if (T::kSigned) a = _mm256_sign_epi8(a, w.q);
      const __m256i dot = sum_pairs(_mm256_maddubs_epi16(wabs, a));
      const float da = acts.d_row(t0 + i)[b];
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(w.d * da), acc[i]);
      if (T::kMin) mins[i] += w.m * (da * float(acts.sums_row(t0 + i)[b]));
    }
  }
  for (int i = 0; i < NT; ++i) args.y[(t0 + i) * args.y_stride + r] = hsum_ps(acc[i]) + mins[i];
}

// Float weights: 8 values at column c (count of them, the rest zero) as fp32.
struct F32 {
  static __m256 load(const uint8_t* row, int64_t c) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  }
};
struct F16 {
  static __m256 load(const uint8_t* row, int64_t c) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c)));
  }
};
struct BF16 {
  static __m256 load(const uint8_t* row, int64_t c) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};
template <class T>
constexpr int kElemBytes = 4;
template <>
constexpr int kElemBytes<F16> = 2;
template <>
constexpr int kElemBytes<BF16> = 2;

template <class T, int NT>
void row_float(const MatmulArgs& args, int64_t r, int64_t t0) {
  const uint8_t* row = args.w + r * args.row_bytes;
  const int64_t cols = args.cols;
  __m256 acc[2][NT];
  for (int i = 0; i < NT; ++i) acc[0][i] = acc[1][i] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    const __m256 w0 = T::load(row, c), w1 = T::load(row, c + 8);
#pragma GCC unroll 4
    for (int i = 0; i < NT; ++i) {
      const float* x = args.x + (t0 + i) * cols + c;
      acc[0][i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[0][i]);
      acc[1][i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[1][i]);
    }
  }
  // Tail: copy the remaining weights and inputs into zero-padded 8-value chunks.
  for (int half = 0; c < cols; c += 8, half ^= 1) {
    const int64_t n = cols - c < 8 ? cols - c : 8;
    alignas(32) uint8_t wbuf[32] = {};
    std::memcpy(wbuf, row + c * kElemBytes<T>, size_t(n * kElemBytes<T>));
    const __m256 w = T::load(wbuf, 0);
    for (int i = 0; i < NT; ++i) {
      alignas(32) float xbuf[8] = {};
      std::memcpy(xbuf, args.x + (t0 + i) * cols + c, size_t(n) * sizeof(float));
      acc[half][i] = _mm256_fmadd_ps(w, _mm256_load_ps(xbuf), acc[half][i]);
    }
  }
  for (int i = 0; i < NT; ++i) {
    args.y[(t0 + i) * args.y_stride + r] = hsum_ps(_mm256_add_ps(acc[0][i], acc[1][i]));
  }
}

// Rows x tokens in passes of up to kMaxTokens tokens per row.
template <void (*Row1)(const MatmulArgs&, int64_t, int64_t),
          void (*Row2)(const MatmulArgs&, int64_t, int64_t),
          void (*Row3)(const MatmulArgs&, int64_t, int64_t),
          void (*Row4)(const MatmulArgs&, int64_t, int64_t)>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = t0; t < t1; t += kMaxTokens) {
      switch (t1 - t >= kMaxTokens ? kMaxTokens : int(t1 - t)) {
        case 1:
          Row1(args, r, t);
          break;
        case 2:
          Row2(args, r, t);
          break;
        case 3:
          Row3(args, r, t);
          break;
        default:
          Row4(args, r, t);
          break;
      }
    }
  }
}
template <class T>
constexpr RowsKernel kQ32 = rows<row_q32<T, 1>, row_q32<T, 2>, row_q32<T, 3>, row_q32<T, 4>>;

// The 32-element formats: every whole 16-row group through the tile kernel
// (kernels_avx2_packed.cpp; packed copy or file layout, same results), the rows after the last
// whole group in natural order. Matmul's row tiles are whole groups, so a row always takes the
// same path.
template <class T, void (*Group)(const MatmulArgs&, int64_t, int64_t, int64_t)>
void rows_q32(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  constexpr int64_t kGroup = 16;  // packed::kRows
  int64_t r = r0;
  if (r0 % kGroup == 0) {
    for (; r + kGroup <= r1; r += kGroup) Group(args, r, t0, t1);
  }
  if (r < r1) kQ32<T>(args, r, r1, t0, t1);
}
template <class T>
constexpr RowsKernel kFloat =
    rows<row_float<T, 1>, row_float<T, 2>, row_float<T, 3>, row_float<T, 4>>;
// Natural-order quantization of n (32 or 256) values with identical results to the scalar
// quantizer: scale amax / 127, values rounded to nearest-even and clamped to +-127.
void quantize_group(const float* x, int n, int8_t* qs, float* d) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  *d = amax / 127.0f;
  const __m256 vid = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (int i = 0; i < n; i += 32) {
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vid));
      q[k] = _mm256_min_epi32(_mm256_max_epi32(q[k], lo), hi);
    }
    // packs work per 128-bit lane; the final permute restores value order
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ordered =
        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + i), ordered);
  }
}

// Sums of consecutive groups of `group` (16 or 32) int8 values.
void group_sums(const int8_t* qs, int64_t n, int group, int32_t* sums) {
  for (int64_t g = 0; g < n / group; ++g) {
    __m256i s = _mm256_setzero_si256();
    for (int i = 0; i < group; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + g * group + i));
      s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_cvtepi8_epi16(v), _mm256_set1_epi16(1)));
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    sums[g] = _mm_cvtsi128_si32(s4);
  }
}

void quantize_q8_32(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  for (int64_t b = 0; b < cols / kQK; ++b) quantize_group(x + b * kQK, kQK, qs + b * kQK, d + b);
  group_sums(qs, cols, kQK, sums);
}
// The K-quant tile kernels' activations (kernels.h): natural values and scales, sums paired.
template <bool kMinPairs>
void quantize_q8_256_pairs(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  for (int64_t b = 0; b < cols / kQKK; ++b) {
    quantize_group(x + b * kQKK, kQKK, qs + b * kQKK, d + b);
    int32_t group_sum[16];
    group_sums(qs + b * kQKK, kQKK, 16, group_sum);
    pair_sums<kMinPairs>(group_sum, sums + (kMinPairs ? 4 : 8) * b);
  }
}

}  // namespace

const KernelSet& kernels_avx2() {
  static const KernelSet set = [] {
    const ActFormat q32{quantize_q8_32, act_q8_32_natural().lengths};
    const ActFormat min_pairs{quantize_q8_256_pairs<true>, act_lengths_min_pairs};
    const ActFormat group_pairs{quantize_q8_256_pairs<false>, act_lengths_group_pairs};
    KernelSet k;
    k.f32 = {kFloat<F32>, {}};
    k.f16 = {kFloat<F16>, {}};
    k.bf16 = {kFloat<BF16>, {}};
    k.q4_0 = {rows_q32<Q4_0, avx2_packed_q4_0>, q32};
    k.q4_1 = {rows_q32<Q4_1, avx2_packed_q4_1>, q32};
    k.q5_0 = {rows_q32<Q5_0, avx2_packed_q5_0>, q32};
    k.q5_1 = {rows_q32<Q5_1, avx2_packed_q5_1>, q32};
    k.q8_0 = {rows_q32<Q8_0, avx2_packed_q8_0>, q32};
    k.q4_k = {avx2_tiles_q4_k, min_pairs};
    k.q5_k = {avx2_tiles_q5_k, min_pairs};
    k.q6_k = {avx2_tiles_q6_k, group_pairs};
    return k;
  }();
  return set;
}

}  // namespace dspark::cpu
