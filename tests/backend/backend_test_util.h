// Helpers shared by the CPU backend tests: random weights of every type (random quant bytes
// with small, finite fp16 scales), random activations, and the ISA levels this CPU has.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "dspark/backend_cpu.h"
#include "dspark/loader.h"

namespace dspark::cpu::testing {

// Owns the bytes of a [rows, cols] weight matrix.
struct RandomWeight {
  std::vector<uint8_t> bytes;
  WeightView view;
};

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// Random matrix of `type`: quant bytes uniform, scales / mins uniform in small ranges.
inline RandomWeight random_weight(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f), mins(-0.1f, 0.1f), val(-1.0f, 1.0f);
  RandomWeight w;
  const DTypeInfo* info = dtype_info(type);
  const uint64_t row_bytes = dtype_row_bytes(type, cols);
  w.bytes.resize(row_bytes * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : w.bytes) b = static_cast<uint8_t>(byte(rng));
  const int64_t n_blocks = rows * cols / info->block_elems;
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint8_t* b = w.bytes.data() + i * info->block_bytes;
    switch (type) {
      case DType::F32: {
        const float v = val(rng);
        std::memcpy(b, &v, 4);
        break;
      }
      case DType::F16:
        put_f16(b, val(rng));
        break;
      case DType::BF16: {
        const uint16_t h = f32_to_bf16(val(rng));
        std::memcpy(b, &h, 2);
        break;
      }
      case DType::Q4_0:
      case DType::Q5_0:
      case DType::Q8_0:
        put_f16(b, scale(rng));
        break;
      case DType::Q4_1:
      case DType::Q5_1:
      case DType::Q4_K:
      case DType::Q5_K:  // d, then m (or dmin)
        put_f16(b, scale(rng));
        put_f16(b + 2, type == DType::Q4_1 || type == DType::Q5_1 ? mins(rng) : scale(rng));
        break;
      case DType::Q6_K:  // d is the last field
        put_f16(b + 208, scale(rng) * 0.05f);
        break;
      case DType::Q2_K:  // scales/mins bytes, then d, dmin at the end
        put_f16(b + 80, scale(rng));
        put_f16(b + 82, scale(rng));
        break;
      case DType::Q3_K:
        put_f16(b + 108, scale(rng));
        break;
      default:
        break;
    }
  }
  w.view.type = type;
  w.view.rows = rows;
  w.view.cols = cols;
  w.view.data = w.bytes.data();
  w.view.row_bytes = row_bytes;
  return w;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// ISA levels this CPU supports, lowest first.
inline std::vector<Isa> available_isas() {
  const Isa saved = active_isa();
  const Isa top = set_isa_cap(Isa::Avx512);
  set_isa_cap(saved);
  std::vector<Isa> out;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (i <= top) out.push_back(i);
  }
  return out;
}

inline const char* isa_label(Isa i) {
  return i == Isa::Avx512 ? "avx512" : i == Isa::Avx2 ? "avx2" : "scalar";
}

// Restores the ISA cap when a test scope ends.
class IsaScope {
 public:
  explicit IsaScope(Isa cap) : saved_(active_isa()) { set_isa_cap(cap); }
  ~IsaScope() { set_isa_cap(saved_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  Isa saved_;
};

}  // namespace dspark::cpu::testing
