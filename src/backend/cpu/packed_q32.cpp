// Conversion between the file's block layout and the packed tiles of packed_q32.h (plain byte
// moves: packing runs once per matrix at load, unpacking once per embedding row looked up).
#include "packed_q32.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "dspark/backend_cpu.h"

namespace dspark::cpu::packed {
namespace {

// Calls fn(T{}) with the format struct of `type`; false for types without a packed layout.
template <class Fn>
bool with_format(DType type, Fn&& fn) {
  switch (type) {
    case DType::Q4_0:
      fn(Q4_0{});
      return true;
    case DType::Q4_1:
      fn(Q4_1{});
      return true;
    case DType::Q5_0:
      fn(Q5_0{});
      return true;
    case DType::Q5_1:
      fn(Q5_1{});
      return true;
    case DType::Q8_0:
      fn(Q8_0{});
      return true;
    default:
      return false;
  }
}

// Copies between one block (file layout) and its row's place in a tile, either way.
template <class T, bool kToTile>
void move_block(uint8_t* tile, int lane, uint8_t* block) {
  using P = Tile<T>;
  auto move = [&](int tile_at, int block_at, int n) {
    if (kToTile) {
      std::memcpy(tile + tile_at, block + block_at, size_t(n));
    } else {
      std::memcpy(block + block_at, tile + tile_at, size_t(n));
    }
  };
  move(P::kD + 2 * lane, 0, 2);
  if constexpr (T::kMin) move(P::kM + 2 * lane, 2, 2);
  if constexpr (T::kQh >= 0) move(P::kQh + 4 * lane, T::kQh, 4);
  for (int k = 0; k < P::kQsDwords; ++k) move(P::kQs + 4 * (kRows * k + lane), T::kQs + 4 * k, 4);
}

}  // namespace

bool packable(DType type) {
  return with_format(type, [](auto) {});
}

uint64_t group_bytes(DType type, int64_t cols) {
  return kRows * dtype_row_bytes(type, cols);
}

void pack_group(DType type, const uint8_t* rows, uint64_t row_bytes, int64_t cols, uint8_t* out) {
  with_format(type, [&](auto t) {
    using T = decltype(t);
    for (int64_t b = 0; b < cols / 32; ++b) {
      for (int lane = 0; lane < kRows; ++lane) {
        // move_block only reads the block when packing.
        auto* block = const_cast<uint8_t*>(rows + lane * row_bytes + b * T::kBytes);
        move_block<T, true>(out + b * Tile<T>::kBytes, lane, block);
      }
    }
  });
}

void unpack_row(DType type, const uint8_t* group, int lane, int64_t cols, uint8_t* out) {
  with_format(type, [&](auto t) {
    using T = decltype(t);
    for (int64_t b = 0; b < cols / 32; ++b) {
      // move_block only reads the tile when unpacking.
      auto* tile = const_cast<uint8_t*>(group + b * Tile<T>::kBytes);
      move_block<T, false>(tile, lane, out + b * T::kBytes);
    }
  });
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

}  // namespace

WeightView pack_for_matmul(const WeightView& w, bool release_source) {
  if (active_isa() != Isa::Avx512 || w.packed != nullptr || !packed::packable(w.type) ||
      w.cols % 32 != 0 || w.row_bytes != dtype_row_bytes(w.type, w.cols) ||
      w.rows < packed::kRows) {
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
