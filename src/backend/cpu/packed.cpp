// Conversion between the file's block layout and the packed tiles of packed.h (plain byte
// moves, field by field: packing runs once per matrix at load, unpacking once per embedding row
// looked up), and pack_for_matmul.
#include "packed.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "dspark/backend_cpu.h"
#include "packed_kquant.h"
#include "packed_q32.h"

namespace dspark::cpu::packed {
namespace {

constexpr Layout kQ4_0 = layout_of<Q4_0>(), kQ4_1 = layout_of<Q4_1>(), kQ5_0 = layout_of<Q5_0>(),
                 kQ5_1 = layout_of<Q5_1>(), kQ8_0 = layout_of<Q8_0>();

// Copies between one block (file layout) and its row's place in a tile, either way.
template <bool kToTile>
void move_block(const Layout& l, uint8_t* tile, int lane, uint8_t* block) {
  for (int f = 0; f < l.n_fields; ++f) {
    const Field& x = l.fields[f];
    for (int k = 0; k < x.count; ++k) {
      uint8_t* t = tile + x.tile_at + x.unit * (kRows * k + lane);
      uint8_t* b = block + x.block_at + x.unit * k;
      uint8_t* to = kToTile ? t : b;
      const uint8_t* from = kToTile ? b : t;
      // Constant sizes, so that each move is one load and one store.
      if (x.unit == 2) {
        std::memcpy(to, from, 2);
      } else {
        std::memcpy(to, from, 4);
      }
    }
  }
}

}  // namespace

const Layout* layout(DType type) {
  switch (type) {
    case DType::Q4_0:
      return &kQ4_0;
    case DType::Q4_1:
      return &kQ4_1;
    case DType::Q5_0:
      return &kQ5_0;
    case DType::Q5_1:
      return &kQ5_1;
    case DType::Q8_0:
      return &kQ8_0;
    case DType::Q4_K:
      return &Q4K::kLayout;
    case DType::Q5_K:
      return &Q5K::kLayout;
    case DType::Q6_K:
      return &Q6K::kLayout;
    default:
      return nullptr;
  }
}

uint64_t group_bytes(DType type, int64_t cols) {
  return kRows * dtype_row_bytes(type, cols);
}

void pack_group(DType type, const uint8_t* rows, uint64_t row_bytes, int64_t cols, uint8_t* out) {
  const Layout* l = layout(type);
  if (l == nullptr) return;
  const int64_t tile_bytes = int64_t(kRows) * l->block_bytes;
  for (int64_t b = 0; b < cols / dtype_info(type)->block_elems; ++b) {
    for (int lane = 0; lane < kRows; ++lane) {
      // move_block only reads the block when packing.
      auto* block = const_cast<uint8_t*>(rows + lane * row_bytes + b * l->block_bytes);
      move_block<true>(*l, out + b * tile_bytes, lane, block);
    }
  }
}

void unpack_row(DType type, const uint8_t* group, int lane, int64_t cols, uint8_t* out) {
  const Layout* l = layout(type);
  if (l == nullptr) return;
  const int64_t tile_bytes = int64_t(kRows) * l->block_bytes;
  for (int64_t b = 0; b < cols / dtype_info(type)->block_elems; ++b) {
    // move_block only reads the tile when unpacking.
    auto* tile = const_cast<uint8_t*>(group + b * tile_bytes);
    move_block<false>(*l, tile, lane, out + b * l->block_bytes);
  }
}

}  // namespace dspark::cpu::packed

namespace dspark::cpu {
namespace {

// Asks the OS to reclaim the whole pages inside [p, p + bytes). MADV_PAGEOUT keeps contents
// (file pages are re-read, anonymous ones swapped), so it is safe on any memory; it is only a
// hint, and failures are ignored.
void release_pages(const void* p, uint64_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + bytes) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
}

// Whether the active kernels read `type` packed: the AVX-512 and AVX2 kernels every type with a
// layout, scalar none.
bool kernels_read_packed(DType type) {
  return active_isa() != Isa::Scalar && packed::packable(type);
}

}  // namespace

WeightView pack_for_matmul(const WeightView& w, bool release_source) {
  if (!kernels_read_packed(w.type) || w.packed != nullptr ||
      w.cols % dtype_info(w.type)->block_elems != 0 ||
      w.row_bytes != dtype_row_bytes(w.type, w.cols) || w.rows < packed::kRows) {
    return w;
  }
  const int64_t groups = w.rows / packed::kRows;
  const uint64_t group_bytes = packed::group_bytes(w.type, w.cols);
  const uint64_t bytes = uint64_t(groups) * group_bytes;
  constexpr std::align_val_t kAlign{64};
  auto* buf = static_cast<uint8_t*>(::operator new(bytes, kAlign, std::nothrow));
  if (buf == nullptr) return w;  // no room for a copy: the file's layout works too
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t g = 0; g < groups; ++g) {
    packed::pack_group(w.type, src + g * group_bytes, w.row_bytes, w.cols, buf + g * group_bytes);
  }
  WeightView out = w;
  out.packed = std::shared_ptr<const uint8_t>(
      buf, [](const uint8_t* p) { ::operator delete(const_cast<uint8_t*>(p), kAlign); });
  if (release_source) release_pages(src, bytes);
  return out;
}

}  // namespace dspark::cpu
