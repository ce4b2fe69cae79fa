// AVX-512 kernels for float weights (F32, F16, BF16): fp32 multiply-adds in a fixed order, two
// accumulators per token over alternating 16-column chunks; each chunk of weights is converted
// once and used by all tokens. Also assembles the AVX-512 KernelSet.
#include <cstdint>

#include "kernels_avx512.h"

// GCC 12 flags the intrinsics headers' own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")
#include "avx512_tile.h"

namespace dspark::cpu {
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << remaining) - 1);
}

constexpr int kPrefetchBytes = 8192;

struct F32 {
  static constexpr int kBytes = 4;
  static __m512 load(const uint8_t* row, int64_t c, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + c);
  }
};
struct F16 {
  static constexpr int kBytes = 2;
  static __m512 load(const uint8_t* row, int64_t c, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c));
  }
};
struct BF16 {
  static constexpr int kBytes = 2;
  static __m512 load(const uint8_t* row, int64_t c, __mmask16 m) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

template <class T, int NT>
void row_tokens(const MatmulArgs& args, int64_t r, int64_t t0) {
  const uint8_t* row = args.w + r * args.row_bytes;
  const int64_t cols = args.cols;
  __m512 acc[2][NT];
  for (int i = 0; i < NT; ++i) acc[0][i] = acc[1][i] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 32 <= cols; c += 32) {
    // Weights stream from memory: ask for the lines a few KiB ahead.
    avx512::prefetch_ahead(row + c * T::kBytes, kPrefetchBytes, 32 * T::kBytes);
    const __m512 w0 = T::load(row, c, 0xFFFF), w1 = T::load(row, c + 16, 0xFFFF);
    for (int i = 0; i < NT; ++i) {
      const float* x = args.x + (t0 + i) * cols + c;
      acc[0][i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc[0][i]);
      acc[1][i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), acc[1][i]);
    }
  }
  for (int half = 0; c < cols; c += 16, half ^= 1) {
    const __mmask16 m = tail_mask(cols - c);
    const __m512 w = T::load(row, c, m);
    for (int i = 0; i < NT; ++i) {
      const __m512 x = _mm512_maskz_loadu_ps(m, args.x + (t0 + i) * cols + c);
      acc[half][i] = _mm512_fmadd_ps(w, x, acc[half][i]);
    }
  }
  for (int i = 0; i < NT; ++i) {
    args.y[(t0 + i) * args.y_stride + r] =
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0][i], acc[1][i]));
  }
}

template <class T>
void rows(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = t0; t < t1; t += 4) {
      switch (t1 - t >= 4 ? 4 : int(t1 - t)) {
        case 1:
          row_tokens<T, 1>(args, r, t);
          break;
        case 2:
          row_tokens<T, 2>(args, r, t);
          break;
        case 3:
          row_tokens<T, 3>(args, r, t);
          break;
        default:
          row_tokens<T, 4>(args, r, t);
          break;
      }
    }
  }
}

}  // namespace

MatmulKernel avx512_f32() {
  return {rows<F32>, {}};
}
MatmulKernel avx512_f16() {
  return {rows<F16>, {}};
}
MatmulKernel avx512_bf16() {
  return {rows<BF16>, {}};
}

const KernelSet& kernels_avx512() {
  static const KernelSet set = [] {
    KernelSet k;
    k.f32 = avx512_f32();
    k.f16 = avx512_f16();
    k.bf16 = avx512_bf16();
    k.q4_0 = avx512_q4_0();
    k.q4_1 = avx512_q4_1();
    k.q5_0 = avx512_q5_0();
    k.q5_1 = avx512_q5_1();
    k.q8_0 = avx512_q8_0();
    k.q4_k = avx512_q4_k();
    k.q5_k = avx512_q5_k();
    k.q6_k = avx512_q6_k();
    return k;
  }();
  return set;
}

}  // namespace dspark::cpu
