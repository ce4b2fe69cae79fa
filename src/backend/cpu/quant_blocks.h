// Byte layouts of the GGUF weight blocks the matmul kernels read directly, and the 8-bit
// activation formats they are multiplied with. The loader owns dequantization; these structs
// only name the fields so the integer kernels can address them.
#pragma once

#include <cstdint>

namespace dspark::cpu {

constexpr int kQK = 32;    // elements per block of the 32-element formats
constexpr int kQKK = 256;  // elements per K-quant super-block

// Weight blocks, fields in file order. fp16 values are raw uint16 bit patterns.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // element j < 16: low nibble of qs[j]; j >= 16: high nibble of qs[j - 16]
};
struct BlockQ4_1 {
  uint16_t d, m;  // w = d * q + m
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j: fifth bit of element j
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 six-bit scales and 8 six-bit mins, packed
  uint8_t qs[128];     // sub-block j: nibble (j & 1) of qs[32 * (j / 2) + l]
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];   // sub-block j, element l: bit j of qh[l]
  uint8_t qs[128];  // as Q4_K
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];  // one per 16 elements
  uint16_t d;
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Six-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void kquant_scale_min(const uint8_t* s /*[12]*/, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Activations of a batch of tokens quantized to signed 8 bits (in [-127, 127]), one token per
// row, values in input order. Each ISA's quantizer chooses what its kernels need besides:
//  Q8_32 (32-element formats): one fp32 scale and one integer sum per 32 elements (the AVX-512
//    kernels prepare per-format terms instead, see quantize_rows in kernels_avx512_q32.cpp).
//  Q8_256 (K-quants): one fp32 scale per 256 elements and one integer sum per 16 (the AVX-512
//    kernels pair sums into int16 halves, see quantize_q8_256 in kernels_avx512_kquant.cpp).
struct QuantizedActs {
  int64_t n_tok = 0;
  const int8_t* qs = nullptr;     // [n_tok, qs_stride]
  const float* d = nullptr;       // [n_tok, d_stride]
  const int32_t* sums = nullptr;  // [n_tok, sums_stride]: sums of the int8 values
  int64_t qs_stride = 0, d_stride = 0, sums_stride = 0;

  const int8_t* qs_row(int64_t t) const { return qs + t * qs_stride; }
  const float* d_row(int64_t t) const { return d + t * d_stride; }
  const int32_t* sums_row(int64_t t) const { return sums + t * sums_stride; }
};

}  // namespace dspark::cpu
