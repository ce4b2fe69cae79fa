// Weights repacked at load for the AVX-512 kernels: each group of 16 consecutive rows becomes,
// block column by block column, one tile in which the fields of the 16 blocks are interleaved so
// that a 64-byte load puts row L's dword (or, from a 32-byte load, its fp16 value) in lane L. A
// tile holds exactly the bytes of the 16 blocks it replaces, so a packed matrix is as large as
// the original. Rows after the last whole group are not packed. The per-format layouts are in
// packed_q32.h and packed_kquant.h; this header holds what they share.
#pragma once

#include <cstdint>

#include "dspark/loader.h"

namespace dspark::cpu::packed {

constexpr int kRows = 16;  // rows per group: one per int32 lane

// A field of a block: `count` units of `unit` bytes (2: an fp16 value, 4: a dword) from byte
// `block_at` of the block. In the tile, unit k of row L sits at tile_at + unit * (16 k + L).
struct Field {
  int block_at = 0, tile_at = 0, unit = 0, count = 0;
};

// How a format's blocks become a tile: the fields in tile order.
struct Layout {
  int block_bytes = 0;
  int n_fields = 0;
  Field fields[5];
};

// Whether the fields fill the tile back to back and cover each block exactly once.
constexpr bool covers_exactly(const Layout& l) {
  int tile_at = 0, field_bytes = 0;
  for (int f = 0; f < l.n_fields; ++f) {
    const Field& x = l.fields[f];
    if (x.tile_at != tile_at || (x.unit != 2 && x.unit != 4) || x.count <= 0) return false;
    if (x.block_at < 0 || x.block_at + x.unit * x.count > l.block_bytes) return false;
    for (int g = 0; g < f; ++g) {  // no two fields overlap in the block
      const Field& y = l.fields[g];
      if (x.block_at < y.block_at + y.unit * y.count &&
          y.block_at < x.block_at + x.unit * x.count) {
        return false;
      }
    }
    tile_at += kRows * x.unit * x.count;
    field_bytes += x.unit * x.count;
  }
  return field_bytes == l.block_bytes && tile_at == kRows * l.block_bytes;
}

// The layout of `type`'s tiles, or null for types without one.
const Layout* layout(DType type);
// Whether `type` has a packed layout.
inline bool packable(DType type) {
  return layout(type) != nullptr;
}
// Bytes of one group's tiles (= 16 rows of the original).
uint64_t group_bytes(DType type, int64_t cols);
// Packs the 16 rows from `rows` (row stride row_bytes) into `out` [blocks per row, tile bytes].
void pack_group(DType type, const uint8_t* rows, uint64_t row_bytes, int64_t cols, uint8_t* out);
// Rebuilds row `lane` of a packed group in the file's block layout: out [row bytes].
void unpack_row(DType type, const uint8_t* group, int lane, int64_t cols, uint8_t* out);

}  // namespace dspark::cpu::packed
