// The packed layout (packed.h) of the K-quants (Q4_K, Q5_K, Q6_K): one tile per super-block
// column of a group of 16 rows (256 values per row). Every field of the blocks keeps its bytes;
// only their order changes, so the kernels still decode the six-bit scales (Q4_K, Q5_K) and
// the split value bits, but for 16 rows per instruction and without transposing.
#pragma once

#include "packed.h"

namespace dspark::cpu::packed {

// Q4_K tile: d [16 fp16], dmin [16 fp16], the 12 scale bytes as 3 dwords x 16 rows, the 128 qs
// bytes as 32 dwords x 16 rows (dword k of row L at dword 16 k + L of the field).
struct Q4K {
  static constexpr int kBlockBytes = 144, kTileBytes = kRows * kBlockBytes;
  static constexpr int kD = 0, kDmin = 32, kScales = 64, kQs = 256;
  static constexpr Layout kLayout{
      kBlockBytes, 4, {{0, kD, 2, 1}, {2, kDmin, 2, 1}, {4, kScales, 4, 3}, {16, kQs, 4, 32}}};
};

// Q5_K tile: as Q4_K with the 32 qh bytes (8 dwords x 16 rows) before the qs.
struct Q5K {
  static constexpr int kBlockBytes = 176, kTileBytes = kRows * kBlockBytes;
  static constexpr int kD = 0, kDmin = 32, kScales = 64, kQh = 256, kQs = 768;
  static constexpr Layout kLayout{
      kBlockBytes,
      5,
      {{0, kD, 2, 1}, {2, kDmin, 2, 1}, {4, kScales, 4, 3}, {16, kQh, 4, 8}, {48, kQs, 4, 32}}};
};

// Q6_K tile: ql (32 dwords x 16 rows), qh (16 dwords), the 16 int8 scales (4 dwords), d.
struct Q6K {
  static constexpr int kBlockBytes = 210, kTileBytes = kRows * kBlockBytes;
  static constexpr int kQl = 0, kQh = 2048, kScales = 3072, kD = 3328;
  static constexpr Layout kLayout{
      kBlockBytes, 4, {{0, kQl, 4, 32}, {128, kQh, 4, 16}, {192, kScales, 4, 4}, {208, kD, 2, 1}}};
};

static_assert(covers_exactly(Q4K::kLayout) && covers_exactly(Q5K::kLayout) &&
              covers_exactly(Q6K::kLayout));

}  // namespace dspark::cpu::packed
