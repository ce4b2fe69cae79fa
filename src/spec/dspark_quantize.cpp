// Q8_0 copies of a DSpark checkpoint's fc and draft-layer matrices (quantize_layers): every
// committed token goes through fc (m * d_model inputs) and the context K/V projections, and
// every round through the layers, so on the CPU those BF16 float products were a fixed cost
// of each step even when nothing was drafted.
#include <algorithm>
#include <cmath>

#include "dspark_checkpoint.h"

namespace dspark::spec::dspark_detail {

namespace {

constexpr int64_t kBlock = 32;       // values per Q8_0 block
constexpr int64_t kBlockBytes = 34;  // f16 scale + 32 signed bytes

// One row of n floats (n % 32 == 0) as Q8_0 blocks: d = max |x| / 127, q = round(x / d).
void quantize_row_q8_0(const float* x /*[n]*/, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const float* v = x + b * kBlock;
    float amax = 0.0f;
    for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    uint8_t* block = out + b * kBlockBytes;
    const uint16_t h = f32_to_f16(d);
    block[0] = static_cast<uint8_t>(h & 0xff);
    block[1] = static_cast<uint8_t>(h >> 8);
    for (int64_t j = 0; j < kBlock; ++j) {
      const float q = std::clamp(std::nearbyint(v[j] * inv), -127.0f, 127.0f);
      block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

void quantize(cpu::WeightView& w, Checkpoint* ck) {
  if (w.data == nullptr || w.cols % kBlock != 0 || w.type == DType::Q8_0) return;
  const uint64_t row_bytes = uint64_t(w.cols / kBlock) * kBlockBytes;
  auto bytes = std::make_shared<std::vector<uint8_t>>(uint64_t(w.rows) * row_bytes);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    cpu::get_row(w, r, row.data());
    quantize_row_q8_0(row.data(), w.cols, bytes->data() + uint64_t(r) * row_bytes);
  }
  cpu::WeightView q;
  q.type = DType::Q8_0;
  q.rows = w.rows;
  q.cols = w.cols;
  q.data = bytes->data();
  q.row_bytes = row_bytes;
  ck->owned.push_back(std::move(bytes));
  w = cpu::pack_for_matmul(q, /*release_source=*/false);
}

}  // namespace

void quantize_layers(Checkpoint* ck) {
  quantize(ck->fc, ck);
  for (DraftLayer& l : ck->layers) {
    for (cpu::WeightView* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) quantize(*w, ck);
  }
}

}  // namespace dspark::spec::dspark_detail
