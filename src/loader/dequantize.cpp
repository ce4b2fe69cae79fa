// Reference (scalar) dequantization of every dequantizable type. Block layouts are ggml's; the
// arithmetic order (scale * q, then +/- offset, in float) matches ggml's reference code so that
// results are bit-identical to it and to the `gguf` Python package.
#include <cstring>

#include "dspark/loader.h"

namespace dspark {

namespace {

constexpr int kQK = 32;    // elements per block of the Q4_0..Q8_0 family
constexpr int kQKK = 256;  // elements per K-quant super-block

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return f16_to_f32(h);
}

// Q4_0: f16 d, then 16 bytes of 4-bit quants (low nibbles = elements 0..15, high = 16..31).
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0f) - 8);
    y[j + kQK / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// Q4_1: f16 d, f16 m, 16 bytes of 4-bit quants; x = d * q + m.
void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0f) + m;
    y[j + kQK / 2] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// Q5_0: f16 d, 32 fifth bits (bit j belongs to element j), 16 bytes of low nibbles; q - 16.
void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < kQK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + kQK / 2)) & 1u) << 4;
    y[j] = d * static_cast<float>(((qs[j] & 0x0f) | hi0) - 16);
    y[j + kQK / 2] = d * static_cast<float>(((qs[j] >> 4) | hi1) - 16);
  }
}

// Q5_1: f16 d, f16 m, 32 fifth bits, 16 bytes of low nibbles; x = d * q + m.
void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < kQK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + kQK / 2)) & 1u) << 4;
    y[j] = d * static_cast<float>((qs[j] & 0x0f) | hi0) + m;
    y[j + kQK / 2] = d * static_cast<float>((qs[j] >> 4) | hi1) + m;
  }
}

// Q8_0: f16 d, 32 signed bytes.
void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// Q2_K: 16 bytes of 4-bit scale|4-bit min pairs, 64 bytes of 2-bit quants, f16 d, f16 dmin.
// Each 128-element half uses 32 quant bytes, read four times at shifts 0, 2, 4, 6; every
// 16 elements take the next scale.
void dequant_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = load_f16(b + 80);
  const float dmin = load_f16(b + 82);
  int is = 0;
  for (int half = 0; half < 2; ++half) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {
        const uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0f);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          *y++ = dl * static_cast<float>((q[part * 16 + l] >> shift) & 3) - ml;
        }
      }
    }
    q += 32;
  }
}

// Q3_K 6-bit scale i of 16: low 4 bits from bytes 0..7 (low nibble for i < 8, high nibble
// after), top 2 bits from bytes 8..11, two bits per group of four scales.
int q3_k_scale(const uint8_t* s, int i) {
  const int low = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
  const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Q3_K: 32 bytes of high-bit masks, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, f16 d.
// A clear high bit subtracts 4 from the 2-bit quant.
void dequant_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* q = b + 32;
  const uint8_t* scales = b + 96;
  const float d = load_f16(b + 108);
  int is = 0;
  int bit = 0;
  for (int half = 0; half < 2; ++half) {
    for (int shift = 0; shift < 8; shift += 2, ++bit) {
      for (int part = 0; part < 2; ++part) {
        const float dl = d * static_cast<float>(q3_k_scale(scales, is++));
        for (int l = 0; l < 16; ++l) {
          const int k = part * 16 + l;
          const int lo = (q[k] >> shift) & 3;
          const int sub = ((hmask[k] >> bit) & 1) != 0 ? 0 : 4;
          *y++ = dl * static_cast<float>(lo - sub);
        }
      }
    }
    q += 32;
  }
}

// Q4_K/Q5_K 6-bit scale and min of sub-block j (of 8) from the 12 packed bytes.
void k4_scale_min(const uint8_t* s, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K: f16 d, f16 dmin, 12 bytes of scales/mins, 128 bytes of 4-bit quants. Each 64 elements
// use 32 quant bytes: low nibbles for the first 32 (sub-block 2i), high for the next (2i+1).
void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < kQKK / 64; ++j) {
    int sc, mn;
    k4_scale_min(scales, 2 * j, &sc, &mn);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    k4_scale_min(scales, 2 * j + 1, &sc, &mn);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0f) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}

// Q5_K: like Q4_K plus 32 bytes of fifth bits (bit 2i / 2i+1 of qh[l] for sub-blocks 2i, 2i+1).
void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48;
  for (int j = 0; j < kQKK / 64; ++j) {
    int sc, mn;
    k4_scale_min(scales, 2 * j, &sc, &mn);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    k4_scale_min(scales, 2 * j + 1, &sc, &mn);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) {
      const int hi = ((qh[l] >> (2 * j)) & 1) << 4;
      *y++ = d1 * static_cast<float>((q[l] & 0x0f) | hi) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int hi = ((qh[l] >> (2 * j + 1)) & 1) << 4;
      *y++ = d2 * static_cast<float>((q[l] >> 4) | hi) - m2;
    }
    q += 32;
  }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed 8-bit scales, f16 d.
// Each 128-element half uses 64 low bytes and 32 high bytes; q - 32.
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_f16(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// Q8_K: f32 d, 256 signed bytes, 16 int16 block sums (unused here).
void dequant_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, sizeof(d));
  for (int j = 0; j < kQKK; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn block_fn(DType type) {
  switch (type) {
    case DType::Q4_0:
      return dequant_q4_0;
    case DType::Q4_1:
      return dequant_q4_1;
    case DType::Q5_0:
      return dequant_q5_0;
    case DType::Q5_1:
      return dequant_q5_1;
    case DType::Q8_0:
      return dequant_q8_0;
    case DType::Q2_K:
      return dequant_q2_k;
    case DType::Q3_K:
      return dequant_q3_k;
    case DType::Q4_K:
      return dequant_q4_k;
    case DType::Q5_K:
      return dequant_q5_k;
    case DType::Q6_K:
      return dequant_q6_k;
    case DType::Q8_K:
      return dequant_q8_k;
    default:
      return nullptr;
  }
}

}  // namespace

void dequantize_row(DType type, const void* src, float* dst, int64_t n_elems) {
  const auto* p = static_cast<const uint8_t*>(src);
  switch (type) {
    case DType::F32:
      std::memcpy(dst, p, static_cast<size_t>(n_elems) * sizeof(float));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n_elems; ++i) dst[i] = load_f16(p + 2 * i);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n_elems; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, sizeof(h));
        dst[i] = bf16_to_f32(h);
      }
      return;
    default:
      break;
  }
  const DTypeInfo* info = dtype_info(type);
  const BlockFn fn = block_fn(type);
  if (info == nullptr || fn == nullptr) return;  // not dequantizable: callers check the table
  const int64_t n_blocks = n_elems / info->block_elems;
  for (int64_t i = 0; i < n_blocks; ++i) {
    fn(p + i * info->block_bytes, dst + i * info->block_elems);
  }
}

}  // namespace dspark
