// The packed layout of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) that the AVX-512
// kernels read without transposing: each group of 16 consecutive rows becomes, block column by
// block column, one tile in which field k of row L sits where a 64-byte load puts it in int32
// lane L. A tile holds exactly the bytes of the 16 blocks it replaces, so a packed matrix is as
// large as the original. Rows after the last whole group are not packed.
#pragma once

#include <cstdint>

#include "dspark/loader.h"

namespace dspark::cpu::packed {

constexpr int kRows = 16;  // rows per group: one per int32 lane

// Per format: block bytes, offsets of the fifth bits and the quantized values inside a block
// (-1: none), whether a block has a min, whether the values are 8-bit, and log2 of the offset
// subtracted from q (0: none).
struct Q4_0 {
  static constexpr int kBytes = 18, kQh = -1, kQs = 2, kShift = 3;
  static constexpr bool kMin = false, kQ8 = false;
};
struct Q4_1 {
  static constexpr int kBytes = 20, kQh = -1, kQs = 4, kShift = 0;
  static constexpr bool kMin = true, kQ8 = false;
};
struct Q5_0 {
  static constexpr int kBytes = 22, kQh = 2, kQs = 6, kShift = 4;
  static constexpr bool kMin = false, kQ8 = false;
};
struct Q5_1 {
  static constexpr int kBytes = 24, kQh = 4, kQs = 8, kShift = 0;
  static constexpr bool kMin = true, kQ8 = false;
};
struct Q8_0 {
  static constexpr int kBytes = 34, kQh = -1, kQs = 2, kShift = 7;
  static constexpr bool kMin = false, kQ8 = true;
};

// Tile of 16 rows: d of row L at fp16 [L]; then m (formats with a min) likewise; then the qh
// word of row L at dword [L] (five-bit formats); then the values: dword k of row L's value bytes
// (16 nibble bytes, or 32 int8 values) at dword [16 k + L].
template <class T>
struct Tile {
  static constexpr int kBytes = kRows * T::kBytes;
  static constexpr int kD = 0;
  static constexpr int kM = 2 * kRows;
  static constexpr int kQh = kM + (T::kMin ? 2 * kRows : 0);
  static constexpr int kQs = kQh + (T::kQh >= 0 ? 4 * kRows : 0);
  static constexpr int kQsDwords = T::kQ8 ? 8 : 4;
  static_assert(kQs + 4 * kRows * kQsDwords == kBytes, "a tile replaces its 16 blocks exactly");
};

// Whether `type` has a packed layout.
bool packable(DType type);
// Bytes of one group's tiles (= 16 rows of the original).
uint64_t group_bytes(DType type, int64_t cols);
// Packs the 16 rows from `rows` (row stride row_bytes) into `out` [cols / 32, tile bytes].
void pack_group(DType type, const uint8_t* rows, uint64_t row_bytes, int64_t cols, uint8_t* out);
// Rebuilds row `lane` of a packed group in the file's block layout: out [row bytes].
void unpack_row(DType type, const uint8_t* group, int lane, int64_t cols, uint8_t* out);

}  // namespace dspark::cpu::packed
