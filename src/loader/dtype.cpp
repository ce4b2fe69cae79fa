// Element type table and the scalar fp16/bf16 conversions every module shares.
#include <bit>
#include <cstring>

#include "dspark/loader.h"

namespace dspark {

namespace {

struct DTypeEntry {
  DType type;
  DTypeInfo info;
};

// Block layouts follow ggml: a block of block_elems elements takes block_bytes bytes.
constexpr DTypeEntry kDTypes[] = {
    {DType::F32, {"F32", 1, 4, true}},       {DType::F16, {"F16", 1, 2, true}},
    {DType::Q4_0, {"Q4_0", 32, 18, true}},   {DType::Q4_1, {"Q4_1", 32, 20, true}},
    {DType::Q5_0, {"Q5_0", 32, 22, true}},   {DType::Q5_1, {"Q5_1", 32, 24, true}},
    {DType::Q8_0, {"Q8_0", 32, 34, true}},   {DType::Q8_1, {"Q8_1", 32, 36, false}},
    {DType::Q2_K, {"Q2_K", 256, 84, true}},  {DType::Q3_K, {"Q3_K", 256, 110, true}},
    {DType::Q4_K, {"Q4_K", 256, 144, true}}, {DType::Q5_K, {"Q5_K", 256, 176, true}},
    {DType::Q6_K, {"Q6_K", 256, 210, true}}, {DType::Q8_K, {"Q8_K", 256, 292, true}},
    {DType::I8, {"I8", 1, 1, false}},        {DType::I16, {"I16", 1, 2, false}},
    {DType::I32, {"I32", 1, 4, false}},      {DType::I64, {"I64", 1, 8, false}},
    {DType::F64, {"F64", 1, 8, false}},      {DType::BF16, {"BF16", 1, 2, true}},
};

}  // namespace

const DTypeInfo* dtype_info(uint32_t raw_type) {
  for (const DTypeEntry& e : kDTypes) {
    if (static_cast<uint32_t>(e.type) == raw_type) return &e.info;
  }
  return nullptr;
}

const DTypeInfo* dtype_info(DType type) {
  return dtype_info(static_cast<uint32_t>(type));
}

uint64_t dtype_row_bytes(DType type, int64_t n_elems) {
  const DTypeInfo* info = dtype_info(type);
  if (info == nullptr || n_elems < 0) return 0;
  return static_cast<uint64_t>(n_elems / info->block_elems) *
         static_cast<uint64_t>(info->block_bytes);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal half: normalise the mantissa into an ordinary float.
      uint32_t e = 113;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
      }
      bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((bits >> 23) & 0xffu);
  const uint32_t mant = bits & 0x7fffffu;
  if (exp == 0xff) {
    // Inf stays inf; NaN stays a (quiet) NaN with its top payload bits.
    return static_cast<uint16_t>(sign | 0x7c00u | (mant != 0 ? 0x200u | (mant >> 13) : 0u));
  }
  const int32_t e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
    const uint32_t m = mant | 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u) != 0)) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u) != 0)) ++half;
  return static_cast<uint16_t>(sign | half);
}

float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x40u);  // keep NaN a NaN
  }
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace dspark
