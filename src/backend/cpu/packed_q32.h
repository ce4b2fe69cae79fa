// The packed layout (packed.h) of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) that the
// AVX-512 kernels read without transposing: one tile per block column of a group of 16 rows.
#pragma once

#include <cstdint>

#include "packed.h"

namespace dspark::cpu::packed {

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

// The fields of Tile<T> for the generic packer.
template <class T>
constexpr Layout layout_of() {
  using P = Tile<T>;
  Layout l{T::kBytes, 0, {}};
  l.fields[l.n_fields++] = {0, P::kD, 2, 1};
  if (T::kMin) l.fields[l.n_fields++] = {2, P::kM, 2, 1};
  if (T::kQh >= 0) l.fields[l.n_fields++] = {T::kQh, P::kQh, 4, 1};
  l.fields[l.n_fields++] = {T::kQs, P::kQs, 4, P::kQsDwords};
  return l;
}
static_assert(covers_exactly(layout_of<Q4_0>()) && covers_exactly(layout_of<Q4_1>()) &&
              covers_exactly(layout_of<Q5_0>()) && covers_exactly(layout_of<Q5_1>()) &&
              covers_exactly(layout_of<Q8_0>()));

}  // namespace dspark::cpu::packed
