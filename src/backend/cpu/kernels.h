// The per-ISA kernel sets behind matmul: for each weight type a rows-kernel and the activation
// format it reads. A rows-kernel computes y[t, r] for a rectangle of rows and tokens; the
// (token, row) result must not depend on the rectangle (batch invariance), so kernels that
// work on several tokens at once repeat the single-token instruction sequence for each.
#pragma once

#include <cstdint>

#include "dspark/backend_cpu.h"
#include "quant_blocks.h"

namespace dspark::cpu {

struct MatmulArgs {
  const uint8_t* w = nullptr;  // [rows, row_bytes]
  uint64_t row_bytes = 0;
  const uint8_t* packed = nullptr;  // [rows / 16, 16 * row_bytes] WeightView::packed, or null
  int64_t cols = 0;
  const float* x = nullptr;  // float weights: [n_tok, cols]
  QuantizedActs acts;        // quantized weights: x quantized per token
  float* y = nullptr;        // [n_tok, y_stride]
  int64_t y_stride = 0;
};

// y[t, r] for r in [r0, r1), t in [t0, t1).
using RowsKernel = void (*)(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1);

// AVX2 tile kernels of the 32-element formats (kernels_avx2_packed.cpp): y[t, r] for the 16
// rows of the whole group that starts at row r0 (a multiple of 16) and t in [t0, t1), from the
// packed copy (packed_q32.h) if args.packed is set, else from the file's layout through the same
// tiles (so both give the same bits), with the natural q8_32 activations. The AVX2 rows-kernels
// use them for every whole 16-row group and their natural-order code for the rows after the last
// one, so a row's result never depends on the rectangle provided rectangles start at a multiple
// of 16 and end at one or at the last row (as matmul's row tiles do).
void avx2_packed_q4_0(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1);
void avx2_packed_q4_1(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1);
void avx2_packed_q5_0(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1);
void avx2_packed_q5_1(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1);
void avx2_packed_q8_0(const MatmulArgs& args, int64_t r0, int64_t t0, int64_t t1);

// AVX2 tile kernels of the K-quants (kernels_avx2_kquant.cpp): rows-kernels over the packed
// tiles of packed_kquant.h (or the same tiles staged from the file's layout), with activations
// in the tile kernels' pairing below; the same bits as the AVX-512 K-quant kernels.
void avx2_tiles_q4_k(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1);
void avx2_tiles_q5_k(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1);
void avx2_tiles_q6_k(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1);

// Per-token lengths of the quantized activation arrays for `cols` inputs.
struct ActLengths {
  int64_t qs = 0, d = 0, sums = 0;
};
// How a kernel wants activations: quantize == nullptr means it reads float x.
struct ActFormat {
  void (*quantize)(const float* x /*[cols]*/, int64_t cols, int8_t* qs, float* d,
                   int32_t* sums) = nullptr;
  ActLengths (*lengths)(int64_t cols) = nullptr;
};

struct MatmulKernel {
  RowsKernel rows = nullptr;
  ActFormat act;
};

struct KernelSet {
  MatmulKernel f32, f16, bf16;
  MatmulKernel q4_0, q4_1, q5_0, q5_1, q8_0;
  MatmulKernel q4_k, q5_k, q6_k;
};

const KernelSet& kernels_scalar();
const KernelSet& kernels_avx2();
const KernelSet& kernels_avx512();
// The set for active_isa().
const KernelSet& active_kernels();

// The K-quant tile kernels' activations (AVX-512 and AVX2): values and one scale per 256 in
// natural order, and per super-block the integer sums the format needs as int16 pairs in dwords.
// Min pairs (Q4_K, Q5_K): four pairs of 32-value sub-block sums, (s0, s2), (s1, s3), (s4, s6),
// (s5, s7), the pairing of the kernels' mins. Group pairs (Q6_K): eight pairs of 16-value group
// sums, (g0, g2), (g1, g3), (g4, g6), (g5, g7), (g8, g10), ..., the pairing of their scales.
inline ActLengths act_lengths_min_pairs(int64_t cols) {
  return {cols, cols / kQKK, cols / 64};
}
inline ActLengths act_lengths_group_pairs(int64_t cols) {
  return {cols, cols / kQKK, cols / 32};
}
// One super-block's sums in either pairing from its 16 group sums (|sum| <= 16 * 127 each, so
// a 32-value sum fits int16): out [4] (min pairs) or [8] (group pairs).
template <bool kMinPairs>
inline void pair_sums(const int32_t group_sum[16], int32_t* out) {
  const auto pair = [](int32_t lo, int32_t hi) {
    return int32_t(uint32_t(uint16_t(lo)) | uint32_t(uint16_t(hi)) << 16);
  };
  if constexpr (kMinPairs) {
    const auto sub_block = [&](int j) { return group_sum[2 * j] + group_sum[2 * j + 1]; };
    constexpr int kFirst[4] = {0, 1, 4, 5};
    for (int p = 0; p < 4; ++p) out[p] = pair(sub_block(kFirst[p]), sub_block(kFirst[p] + 2));
  } else {
    for (int p = 0; p < 8; ++p) {
      const int g = 4 * (p / 2) + p % 2;
      out[p] = pair(group_sum[g], group_sum[g + 2]);
    }
  }
}

// The natural-order formats (scalar kernels; AVX2 q8_32 too): values in input order, one scale
// per 32 (q8_32) or 256 (q8_256) values, one sum per 32 or 16 values.
ActFormat act_q8_32_natural();
ActFormat act_q8_256_natural();

}  // namespace dspark::cpu
