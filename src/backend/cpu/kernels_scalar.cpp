// Portable kernels: the fallback where AVX2 is missing and the baseline the SIMD sets are
// tested against. Integer block dot products, then one float multiply-add per block.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace dspark::cpu {
namespace {

float fp16(uint16_t h) {
  return f16_to_f32(h);
}

// Signed int8 values of one 32-element block with the format's offset removed (Q4_1 / Q5_1 keep
// q as is: their min is applied separately).
void decode(const BlockQ4_0& b, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>((b.qs[j] & 0x0F) - 8);
    q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
  }
}
void decode(const BlockQ4_1& b, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(b.qs[j] & 0x0F);
    q[j + 16] = static_cast<int8_t>(b.qs[j] >> 4);
  }
}
uint32_t high_bits(const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return h;
}
void decode(const BlockQ5_0& b, int8_t* q) {
  uint32_t h = high_bits(b.qh);
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(((b.qs[j] & 0x0F) | (((h >> j) & 1) << 4)) - 16);
    q[j + 16] = static_cast<int8_t>(((b.qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4)) - 16);
  }
}
void decode(const BlockQ5_1& b, int8_t* q) {
  uint32_t h = high_bits(b.qh);
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>((b.qs[j] & 0x0F) | (((h >> j) & 1) << 4));
    q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4));
  }
}
void decode(const BlockQ8_0& b, int8_t* q) {
  std::memcpy(q, b.qs, 32);
}

float block_min(const BlockQ4_1& b) {
  return fp16(b.m);
}
float block_min(const BlockQ5_1& b) {
  return fp16(b.m);
}
template <class B>
float block_min(const B&) {
  return 0.0f;
}

int32_t dot_i8(const int8_t* q, const int8_t* a, int n) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i) s += int32_t(q[i]) * int32_t(a[i]);
  return s;
}

// The 32-element formats: one block's contribution to a row's dot product with a token, given
// the token's block values `a`, scale and value sum.
template <class Block>
struct Q32 {
  using B = Block;
  static constexpr int kElems = kQK, kSums = 1;
  static float block_dot(const Block& w, const int8_t* a, float da, const int32_t* sums) {
    int8_t q[kQK];
    decode(w, q);
    const int32_t isum = dot_i8(q, a, kQK);
    return fp16(w.d) * da * float(isum) + block_min(w) * da * float(sums[0]);
  }
};

// Values of a K-quant super-block (Q6_K's offset removed; Q4_K / Q5_K's mins apply separately).
void decode_q4k(const BlockQ4_K& b, int8_t* q) {
  for (int j = 0; j < 8; ++j) {
    const uint8_t* src = b.qs + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) {
      q[32 * j + l] = static_cast<int8_t>((j & 1) ? (src[l] >> 4) : (src[l] & 0x0F));
    }
  }
}
void decode_q5k(const BlockQ5_K& b, int8_t* q) {
  for (int j = 0; j < 8; ++j) {
    const uint8_t* src = b.qs + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) {
      int lo = (j & 1) ? (src[l] >> 4) : (src[l] & 0x0F);
      q[32 * j + l] = static_cast<int8_t>(lo | (((b.qh[l] >> j) & 1) << 4));
    }
  }
}
void decode_q6k(const BlockQ6_K& b, int8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    int8_t* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l] = static_cast<int8_t>(((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32);
      out[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
      out[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      out[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

// Q4_K / Q5_K: per super-block an integer sum of scale_j * dot_j, then the float scales.
template <class Block, void (*Decode)(const Block&, int8_t*)>
struct Q45K {
  using B = Block;
  static constexpr int kElems = kQKK, kSums = 16;  // one activation sum per 16 values
  static float block_dot(const Block& w, const int8_t* a, float da, const int32_t* sums) {
    int8_t q[kQKK];
    Decode(w, q);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      kquant_scale_min(w.scales, j, &sc, &m);
      isum += sc * dot_i8(q + 32 * j, a + 32 * j, 32);
      msum += m * (sums[2 * j] + sums[2 * j + 1]);
    }
    return da * (fp16(w.d) * float(isum) - fp16(w.dmin) * float(msum));
  }
};
struct Q6K {
  using B = BlockQ6_K;
  static constexpr int kElems = kQKK, kSums = 16;
  static float block_dot(const BlockQ6_K& w, const int8_t* a, float da, const int32_t*) {
    int8_t q[kQKK];
    decode_q6k(w, q);
    int32_t isum = 0;
    for (int k = 0; k < 16; ++k) isum += w.scales[k] * dot_i8(q + 16 * k, a + 16 * k, 16);
    return da * fp16(w.d) * float(isum);
  }
};

// y[t, r] for a quantized format F: the blocks' contributions summed in order.
template <class F>
void rows_quant(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  const int64_t nb = args.cols / F::kElems;
  for (int64_t r = r0; r < r1; ++r) {
    const auto* w = reinterpret_cast<const typename F::B*>(args.w + r * args.row_bytes);
    for (int64_t t = t0; t < t1; ++t) {
      const int8_t* a = args.acts.qs_row(t);
      const float* da = args.acts.d_row(t);
      const int32_t* sa = args.acts.sums_row(t);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        acc += F::block_dot(w[b], a + b * F::kElems, da[b], sa + b * F::kSums);
      }
      args.y[t * args.y_stride + r] = acc;
    }
  }
}

template <float (*Load)(const uint8_t*, int64_t)>
void rows_float(const MatmulArgs& args, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = args.w + r * args.row_bytes;
    for (int64_t t = t0; t < t1; ++t) {
      const float* x = args.x + t * args.cols;
      float acc = 0.0f;
      for (int64_t c = 0; c < args.cols; ++c) acc += Load(w, c) * x[c];
      args.y[t * args.y_stride + r] = acc;
    }
  }
}
float load_f32(const uint8_t* w, int64_t c) {
  float v;
  std::memcpy(&v, w + 4 * c, 4);
  return v;
}
uint16_t load_u16(const uint8_t* w, int64_t c) {
  uint16_t v;
  std::memcpy(&v, w + 2 * c, 2);
  return v;
}
float load_f16(const uint8_t* w, int64_t c) {
  return f16_to_f32(load_u16(w, c));
}
float load_bf16(const uint8_t* w, int64_t c) {
  return bf16_to_f32(load_u16(w, c));
}

// Scale of a group from its largest magnitude; values rounded to nearest-even (as vcvtps2dq
// does) and clamped, so any input maps into [-127, 127].
void quantize_group(const float* x, int n, int8_t* qs, float* d) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  *d = amax / 127.0f;
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] * id);
    v = std::fmin(std::fmax(v, -127.0f), 127.0f);
    qs[i] = static_cast<int8_t>(v);
  }
}
void group_sums(const int8_t* qs, int64_t n, int group, int32_t* sums) {
  for (int64_t g = 0; g < n / group; ++g) {
    int32_t s = 0;
    for (int i = 0; i < group; ++i) s += qs[g * group + i];
    sums[g] = s;
  }
}

void quantize_q8_32(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  for (int64_t b = 0; b < cols / kQK; ++b) quantize_group(x + b * kQK, kQK, qs + b * kQK, d + b);
  group_sums(qs, cols, kQK, sums);
}
ActLengths lengths_q8_32(int64_t cols) {
  return {cols, cols / kQK, cols / kQK};
}

void quantize_q8_256(const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sums) {
  for (int64_t b = 0; b < cols / kQKK; ++b) {
    quantize_group(x + b * kQKK, kQKK, qs + b * kQKK, d + b);
  }
  group_sums(qs, cols, 16, sums);
}
ActLengths lengths_q8_256(int64_t cols) {
  return {cols, cols / kQKK, cols / 16};
}

}  // namespace

ActFormat act_q8_32_natural() {
  return {quantize_q8_32, lengths_q8_32};
}
ActFormat act_q8_256_natural() {
  return {quantize_q8_256, lengths_q8_256};
}

const KernelSet& kernels_scalar() {
  static const KernelSet set = [] {
    const ActFormat q32 = act_q8_32_natural(), q256 = act_q8_256_natural(), none{};
    KernelSet k;
    k.f32 = {rows_float<load_f32>, none};
    k.f16 = {rows_float<load_f16>, none};
    k.bf16 = {rows_float<load_bf16>, none};
    k.q4_0 = {rows_quant<Q32<BlockQ4_0>>, q32};
    k.q4_1 = {rows_quant<Q32<BlockQ4_1>>, q32};
    k.q5_0 = {rows_quant<Q32<BlockQ5_0>>, q32};
    k.q5_1 = {rows_quant<Q32<BlockQ5_1>>, q32};
    k.q8_0 = {rows_quant<Q32<BlockQ8_0>>, q32};
    k.q4_k = {rows_quant<Q45K<BlockQ4_K, decode_q4k>>, q256};
    k.q5_k = {rows_quant<Q45K<BlockQ5_K, decode_q5k>>, q256};
    k.q6_k = {rows_quant<Q6K>, q256};
    return k;
  }();
  return set;
}

}  // namespace dspark::cpu
