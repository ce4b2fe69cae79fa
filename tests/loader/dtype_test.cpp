// dtype table, fp16/bf16 conversions, and dequantize_row on hand-built blocks whose expected
// values follow from the documented ggml block layouts (the Python reference test checks the
// same code against the gguf package on random and real data).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "dspark/loader.h"

namespace dspark {
namespace {

// f16 bits -> value, straight from the IEEE-754 binary16 definition.
double f16_reference_value(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  if (exp == 31) v = mant == 0 ? INFINITY : NAN;
  return sign ? -v : v;
}

// Nearest binary16 (ties to even mantissa, overflow to inf) found by search over all values.
uint16_t f16_reference_round(float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (std::isinf(a) || a >= 65520.0) return sign | 0x7c00;  // 65520 = halfway to 2^16
  uint16_t lo = 0, hi = 0x7bff;                             // largest h with value <= a
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (f16_reference_value(mid) <= a)
      lo = mid;
    else
      hi = static_cast<uint16_t>(mid - 1);
  }
  if (lo == 0x7bff) return sign | lo;
  const double down = a - f16_reference_value(lo);
  const double up = f16_reference_value(static_cast<uint16_t>(lo + 1)) - a;
  const bool round_up = up < down || (up == down && (lo & 1));
  return sign | static_cast<uint16_t>(lo + (round_up ? 1 : 0));
}

TEST(DType, TableMatchesGgmlLayouts) {
  struct Row {
    DType type;
    const char* name;
    int elems, bytes;
    bool deq;
  };
  const Row rows[] = {
      {DType::F32, "F32", 1, 4, true},       {DType::F16, "F16", 1, 2, true},
      {DType::BF16, "BF16", 1, 2, true},     {DType::Q4_0, "Q4_0", 32, 18, true},
      {DType::Q4_1, "Q4_1", 32, 20, true},   {DType::Q5_0, "Q5_0", 32, 22, true},
      {DType::Q5_1, "Q5_1", 32, 24, true},   {DType::Q8_0, "Q8_0", 32, 34, true},
      {DType::Q8_1, "Q8_1", 32, 36, false},  {DType::Q2_K, "Q2_K", 256, 84, true},
      {DType::Q3_K, "Q3_K", 256, 110, true}, {DType::Q4_K, "Q4_K", 256, 144, true},
      {DType::Q5_K, "Q5_K", 256, 176, true}, {DType::Q6_K, "Q6_K", 256, 210, true},
      {DType::Q8_K, "Q8_K", 256, 292, true}, {DType::I8, "I8", 1, 1, false},
      {DType::I16, "I16", 1, 2, false},      {DType::I32, "I32", 1, 4, false},
      {DType::I64, "I64", 1, 8, false},      {DType::F64, "F64", 1, 8, false},
  };
  for (const Row& r : rows) {
    const DTypeInfo* info = dtype_info(r.type);
    ASSERT_NE(info, nullptr) << r.name;
    EXPECT_STREQ(info->name, r.name);
    EXPECT_EQ(info->block_elems, r.elems) << r.name;
    EXPECT_EQ(info->block_bytes, r.bytes) << r.name;
    EXPECT_EQ(info->dequantizable, r.deq) << r.name;
    EXPECT_EQ(dtype_info(static_cast<uint32_t>(r.type)), info);
    EXPECT_EQ(dtype_row_bytes(r.type, r.elems * 3), static_cast<uint64_t>(r.bytes) * 3);
  }
  for (uint32_t raw : {4u, 5u, 16u, 19u, 29u, 31u, 39u, 1000u}) EXPECT_EQ(dtype_info(raw), nullptr);
  EXPECT_EQ(dtype_row_bytes(DType::Q4_K, 4096), 16u * 144u);
}

TEST(DType, F16ToF32KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(std::bit_cast<uint32_t>(f16_to_f32(0x8000)), 0x80000000u);
}

TEST(DType, F16ExhaustiveAgainstDefinition) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = f16_to_f32(bits);
    const double ref = f16_reference_value(bits);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), ref) << h;
    ASSERT_EQ(f32_to_f16(f), bits) << h;  // exact values survive the round trip
  }
}

TEST(DType, F32ToF16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, even is down
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, even is up
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie between 65504 and 2^16 goes to inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);     // tie between 1 and 2 subnormals
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));

  // Every midpoint between neighbouring halves and the floats either side of it.
  for (uint16_t h = 0; h < 0x7bff; ++h) {
    const auto mid = static_cast<float>((f16_reference_value(h) + f16_reference_value(h + 1)) / 2);
    for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      ASSERT_EQ(f32_to_f16(x), f16_reference_round(x)) << x;
      ASSERT_EQ(f32_to_f16(-x), f16_reference_round(-x)) << x;
    }
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int k = 0; k < 200000; ++k) {
    // Exponents around the half range, where rounding matters.
    const uint32_t bits = (any_bits(rng) & 0x807fffffu) | ((any_bits(rng) % 48 + 95) << 23);
    const float x = std::bit_cast<float>(bits);
    ASSERT_EQ(f32_to_f16(x), f16_reference_round(x)) << x;
  }
}

TEST(DType, Bf16Conversions) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie, even is down
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie, even is up
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // max float -> inf
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));

  // Nearest with ties to even, checked against both neighbours of the result.
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int k = 0; k < 200000; ++k) {
    const float x = std::bit_cast<float>(any_bits(rng) & 0xbf7fffffu);  // finite values only
    const uint16_t b = f32_to_bf16(x);
    const double err = std::fabs(static_cast<double>(bf16_to_f32(b)) - x);
    for (int step : {-1, 1}) {
      const double other = bf16_to_f32(static_cast<uint16_t>(b + step));
      if (!std::isfinite(other)) continue;
      const double other_err = std::fabs(other - x);
      ASSERT_TRUE(err < other_err || (err == other_err && (b & 1) == 0)) << x;
    }
  }
}

std::vector<float> dequant(DType type, const std::vector<uint8_t>& blocks) {
  const DTypeInfo* info = dtype_info(type);
  const int64_t n = static_cast<int64_t>(blocks.size()) / info->block_bytes * info->block_elems;
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(type, blocks.data(), out.data(), n);
  return out;
}

void put_f16(std::vector<uint8_t>* b, size_t off, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(b->data() + off, &h, 2);
}

TEST(Dequantize, PlainTypes) {
  const std::vector<float> v = {1.5f, -2.25f, 0.0f, 1e-3f};
  std::vector<uint8_t> f32(16);
  std::memcpy(f32.data(), v.data(), 16);
  EXPECT_EQ(dequant(DType::F32, f32), v);
  std::vector<uint8_t> f16(8), bf16(8);
  for (size_t i = 0; i < v.size(); ++i) {
    put_f16(&f16, 2 * i, v[i]);
    const uint16_t b = f32_to_bf16(v[i]);
    std::memcpy(bf16.data() + 2 * i, &b, 2);
  }
  EXPECT_EQ(dequant(DType::F16, f16),
            (std::vector<float>{1.5f, -2.25f, 0.0f, f16_to_f32(f32_to_f16(1e-3f))}));
  EXPECT_EQ(dequant(DType::BF16, bf16),
            (std::vector<float>{1.5f, -2.25f, 0.0f, bf16_to_f32(f32_to_bf16(1e-3f))}));
}

// Q4_0/Q4_1 pack element j in the low nibble and element j+16 in the high nibble of byte j.
TEST(Dequantize, Q4_0AndQ4_1) {
  std::vector<uint8_t> q40(18), q41(20);
  put_f16(&q40, 0, 0.5f);
  put_f16(&q41, 0, 0.25f);
  put_f16(&q41, 2, -1.0f);
  for (int j = 0; j < 16; ++j) {
    q40[2 + j] = q41[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  }
  const auto y0 = dequant(DType::Q4_0, q40), y1 = dequant(DType::Q4_1, q41);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y0[j], (j - 8) * 0.5f);
    EXPECT_EQ(y0[j + 16], (7 - j) * 0.5f);
    EXPECT_EQ(y1[j], 0.25f * j - 1.0f);
    EXPECT_EQ(y1[j + 16], 0.25f * (15 - j) - 1.0f);
  }
}

// Q5_0/Q5_1 add bit j of the 32-bit qh word as bit 4 of element j.
TEST(Dequantize, Q5_0AndQ5_1) {
  std::vector<uint8_t> q50(22), q51(24);
  put_f16(&q50, 0, 1.0f);
  put_f16(&q51, 0, 0.5f);
  put_f16(&q51, 2, 2.0f);
  const uint32_t qh = 0xAAAA0F0Fu;
  std::memcpy(q50.data() + 2, &qh, 4);
  std::memcpy(q51.data() + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) {
    q50[6 + j] = q51[8 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  }
  const auto y0 = dequant(DType::Q5_0, q50), y1 = dequant(DType::Q5_1, q51);
  for (int e = 0; e < 32; ++e) {
    const int low = e < 16 ? e : 15 - (e - 16);
    const int q = low | (((qh >> e) & 1) << 4);
    EXPECT_EQ(y0[e], static_cast<float>(q - 16)) << e;
    EXPECT_EQ(y1[e], 0.5f * q + 2.0f) << e;
  }
}

TEST(Dequantize, Q8_0AndQ8_K) {
  std::vector<uint8_t> q80(34), q8k(292);
  put_f16(&q80, 0, 0.125f);
  for (int j = 0; j < 32; ++j) q80[2 + j] = static_cast<uint8_t>(j * 8);  // int8: j*8-256 for j>=16
  const float d = 0.5f;
  std::memcpy(q8k.data(), &d, 4);
  for (int j = 0; j < 256; ++j) q8k[4 + j] = static_cast<uint8_t>(j);
  const auto y0 = dequant(DType::Q8_0, q80), yk = dequant(DType::Q8_K, q8k);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y0[j], static_cast<int8_t>(j * 8) * 0.125f);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(yk[j], static_cast<int8_t>(j) * 0.5f);
}

// Q2_K: element e uses scale byte e/16 (low nibble scale, high nibble min) and the 2-bit field
// at shift 2*((e%128)/32) of quant byte 32*(e/128) + e%32.
TEST(Dequantize, Q2_K) {
  std::vector<uint8_t> b(84);
  for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  for (int k = 0; k < 64; ++k) b[16 + k] = 0xE4;  // fields 0,1,2,3 at shifts 0,2,4,6
  put_f16(&b, 80, 1.0f);
  put_f16(&b, 82, 0.5f);
  const auto y = dequant(DType::Q2_K, b);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16, q = (e % 128) / 32;
    EXPECT_EQ(y[e], static_cast<float>(s * q) - 0.5f * static_cast<float>(15 - s)) << e;
  }
}

// Q3_K scales: 16 six-bit values, low nibbles in bytes 0..7 (scale i<8 low nibble of byte i,
// i>=8 high nibble of byte i-8), top two bits in bits 2*(i/4) of byte 8 + i%4; stored +32.
std::vector<uint8_t> pack_q3_k_scales(const int (&s)[16]) {
  std::vector<uint8_t> p(12, 0);
  for (int i = 0; i < 16; ++i) {
    const int v = s[i] + 32;
    p[i % 8] |= static_cast<uint8_t>((v & 15) << (i < 8 ? 0 : 4));
    p[8 + i % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (i / 4)));
  }
  return p;
}

TEST(Dequantize, Q3_K) {
  int scales[16];
  for (int i = 0; i < 16; ++i) scales[i] = i - 12;
  const auto packed = pack_q3_k_scales(scales);
  for (int hmask_byte : {0xFF, 0x00, 0x0F}) {
    std::vector<uint8_t> b(110);
    for (int k = 0; k < 32; ++k) b[k] = static_cast<uint8_t>(hmask_byte);
    for (int k = 0; k < 64; ++k) b[32 + k] = 0xE4;
    std::copy(packed.begin(), packed.end(), b.begin() + 96);
    put_f16(&b, 108, 2.0f);
    const auto y = dequant(DType::Q3_K, b);
    for (int e = 0; e < 256; ++e) {
      const int group = e / 32;  // hmask bit index: 4 per half
      const int q = (e % 128) / 32 - (((hmask_byte >> group) & 1) ? 0 : 4);
      EXPECT_EQ(y[e], 2.0f * static_cast<float>(scales[e / 16]) * static_cast<float>(q)) << e;
    }
  }
}

// Q4_K/Q5_K scales and mins: 8 pairs of 6-bit values; pairs 0..3 in the low 6 bits of bytes
// 0..3 (scales) and 4..7 (mins); pairs 4..7 as a low nibble in bytes 8..11 (scale low, min high)
// plus their top two bits in bits 6..7 of bytes 0..3 (scales) and 4..7 (mins).
std::vector<uint8_t> pack_k4_scales(const int (&sc)[8], const int (&mn)[8]) {
  std::vector<uint8_t> p(12, 0);
  for (int j = 0; j < 4; ++j) {
    p[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    p[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    p[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  return p;
}

TEST(Dequantize, Q4_K) {
  const int sc[8] = {1, 63, 17, 32, 5, 48, 33, 62};
  const int mn[8] = {0, 7, 63, 40, 18, 2, 49, 31};
  const auto packed = pack_k4_scales(sc, mn);
  std::vector<uint8_t> b(144);
  put_f16(&b, 0, 0.5f);
  put_f16(&b, 2, 0.25f);
  std::copy(packed.begin(), packed.end(), b.begin() + 4);
  for (int k = 0; k < 128; ++k) b[16 + k] = 0x93;  // low nibble 3, high nibble 9
  const auto y = dequant(DType::Q4_K, b);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, q = s % 2 == 0 ? 3 : 9;
    EXPECT_EQ(y[e], 0.5f * sc[s] * q - 0.25f * mn[s]) << e;
  }
}

TEST(Dequantize, Q5_K) {
  const int sc[8] = {2, 3, 60, 1, 45, 9, 33, 16};
  const int mn[8] = {63, 0, 1, 2, 50, 17, 8, 40};
  const auto packed = pack_k4_scales(sc, mn);
  std::vector<uint8_t> b(176);
  put_f16(&b, 0, 1.0f);
  put_f16(&b, 2, 0.5f);
  std::copy(packed.begin(), packed.end(), b.begin() + 4);
  for (int l = 0; l < 32; ++l) b[16 + l] = static_cast<uint8_t>(l % 2 == 0 ? 0x55 : 0xA6);
  for (int k = 0; k < 128; ++k) b[48 + k] = 0x21;  // low nibble 1, high nibble 2
  const auto y = dequant(DType::Q5_K, b);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, l = e % 32;
    const int qh = l % 2 == 0 ? 0x55 : 0xA6;  // bit s of qh[l] is bit 4 of the quant
    const int q = (s % 2 == 0 ? 1 : 2) | (((qh >> s) & 1) << 4);
    EXPECT_EQ(y[e], 1.0f * sc[s] * q - 0.5f * mn[s]) << e;
  }
}

// Q6_K: element e has 8-bit scale e/16; within its 128-element half, group g = (e%128)/32 takes
// the low (g<2) or high nibble of ql[64*half + e%32 + 32*(g%2)] and bits 2g..2g+1 of
// qh[32*half + e%32] as bits 4..5; stored +32.
TEST(Dequantize, Q6_K) {
  std::vector<uint8_t> b(210);
  for (int k = 0; k < 128; ++k) b[k] = k < 64 ? 0x21 : 0x43;       // second half: nibbles 3, 4
  for (int k = 0; k < 64; ++k) b[128 + k] = k < 32 ? 0x1B : 0xE4;  // 2-bit fields 3,2,1,0 / 0,1,2,3
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 8));
  put_f16(&b, 208, 0.5f);
  const auto y = dequant(DType::Q6_K, b);
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, g = (e % 128) / 32;
    const int nibble = half == 0 ? (g < 2 ? 1 : 2) : (g < 2 ? 3 : 4);
    const int hi = half == 0 ? 3 - g : g;
    const int q = (nibble | (hi << 4)) - 32;
    EXPECT_EQ(y[e], 0.5f * static_cast<float>(e / 16 - 8) * static_cast<float>(q)) << e;
  }
}

TEST(Dequantize, RowOfSeveralBlocks) {
  std::vector<uint8_t> blocks(3 * 34, 0);
  for (int k = 0; k < 3; ++k) {
    put_f16(&blocks, 34 * k, static_cast<float>(k + 1));
    blocks[34 * k + 2 + 5] = 3;
  }
  const auto y = dequant(DType::Q8_0, blocks);
  ASSERT_EQ(y.size(), 96u);
  for (int k = 0; k < 3; ++k) {
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[32 * k + j], j == 5 ? 3.0f * (k + 1) : 0.0f);
  }
}

}  // namespace
}  // namespace dspark
