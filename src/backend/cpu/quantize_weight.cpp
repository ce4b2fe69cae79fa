// Weight copies the CPU backend makes at load: rows gathered into owned memory and float
// matrices quantized to Q8_0, each placed (packed) like a weight read from a file.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "dspark/backend_cpu.h"

namespace dspark::cpu {

namespace {

constexpr int64_t kQ8Block = 32;        // values per Q8_0 block
constexpr uint64_t kQ8BlockBytes = 34;  // f16 scale + 32 signed bytes

}  // namespace

void quantize_row_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* v = x + b * kQ8Block;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    uint8_t* block = out + uint64_t(b) * kQ8BlockBytes;
    const uint16_t h = f32_to_f16(d);
    block[0] = static_cast<uint8_t>(h & 0xff);
    block[1] = static_cast<uint8_t>(h >> 8);
    for (int64_t j = 0; j < kQ8Block; ++j) {
      const float q = std::clamp(std::nearbyint(v[j] * inv), -127.0f, 127.0f);
      block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

Result<WeightView> quantize_weight(const WeightView& w, DType type) {
  if (type != DType::Q8_0) {
    const DTypeInfo* info = dtype_info(type);
    return Error{std::string("the CPU backend quantizes weights to Q8_0 only, not ") +
                 (info != nullptr ? info->name : "an unknown type")};
  }
  if (w.cols % kQ8Block != 0) {
    return Error{"a Q8_0 weight needs a multiple of 32 columns, not " + std::to_string(w.cols)};
  }
  const uint64_t row_bytes = uint64_t(w.cols / kQ8Block) * kQ8BlockBytes;
  auto bytes = std::shared_ptr<uint8_t[]>(new uint8_t[uint64_t(w.rows) * row_bytes]);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    get_row(w, r, row.data());
    quantize_row_q8_0(row.data(), w.cols, bytes.get() + uint64_t(r) * row_bytes);
  }
  WeightView q;
  q.type = DType::Q8_0;
  q.rows = w.rows;
  q.cols = w.cols;
  q.data = bytes.get();
  q.row_bytes = row_bytes;
  q.storage = std::move(bytes);
  return pack_for_matmul(q, /*release_source=*/false);
}

WeightView gather_rows(const WeightView& w, const int32_t* ids, int64_t n) {
  auto bytes = std::shared_ptr<uint8_t[]>(new uint8_t[uint64_t(n) * w.row_bytes]);
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t j = 0; j < n; ++j) {
    std::memcpy(bytes.get() + uint64_t(j) * w.row_bytes, src + uint64_t(ids[j]) * w.row_bytes,
                w.row_bytes);
  }
  WeightView cut = w;
  cut.rows = n;
  cut.data = bytes.get();
  cut.packed = nullptr;
  cut.storage = std::move(bytes);
  return pack_for_matmul(cut, /*release_source=*/false);
}

}  // namespace dspark::cpu
