// rmsnorm, silu_mul, add_inplace, argmax and rope against plain double-precision formulas, on
// every ISA path.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

using testing::available_isas;
using testing::IsaScope;
using testing::random_floats;

TEST(Ops, RmsnormMatchesFormula) {
  const int64_t n = 3;
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    // Widths below, at and past the SIMD kernel's 32- and 8-value steps.
    for (int64_t d : {5, 32, 77, 576}) {
      const auto x = random_floats(n * d, 1, -3.0f, 3.0f);
      const auto w = random_floats(d, 2);
      std::vector<float> y(n * d);
      rmsnorm(x.data(), w.data(), n, d, 1e-5f, y.data());
      for (int64_t i = 0; i < n; ++i) {
        double ss = 0;
        for (int64_t c = 0; c < d; ++c) ss += double(x[i * d + c]) * x[i * d + c];
        const double inv = 1.0 / std::sqrt(ss / d + 1e-5);
        for (int64_t c = 0; c < d; ++c) {
          EXPECT_NEAR(y[i * d + c], x[i * d + c] * inv * w[c], 1e-6 * std::fabs(inv) * 3 + 1e-7)
              << testing::isa_label(isa) << " d " << d;
        }
      }
      // In place gives the same result.
      auto z = x;
      rmsnorm(z.data(), w.data(), n, d, 1e-5f, z.data());
      EXPECT_EQ(z, y) << testing::isa_label(isa) << " d " << d;
    }
  }
}

TEST(Ops, SiluMulMatchesFormula) {
  auto g = random_floats(1003, 3, -20.0f, 20.0f);
  g[0] = 0.0f;
  g[1] = -100.0f;
  g[2] = 100.0f;
  g[3] = -89.0f;
  const auto u = random_floats(1003, 4, -2.0f, 2.0f);
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    for (int64_t n : {1, 15, 16, 17, 1003}) {
      std::vector<float> y(n);
      silu_mul(g.data(), u.data(), n, y.data());
      for (int64_t i = 0; i < n; ++i) {
        const double ref = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
        EXPECT_NEAR(y[i], ref, 4e-7 * std::fabs(ref) + 1e-30)
            << testing::isa_label(isa) << " g " << g[i];
      }
    }
  }
}

TEST(Ops, AddInplace) {
  std::vector<float> y = {1, 2, 3}, x = {0.5f, -2, 10};
  add_inplace(y.data(), x.data(), 3);
  EXPECT_EQ(y, (std::vector<float>{1.5f, 0, 13}));
}

TEST(Ops, ArgmaxFirstOfTies) {
  const std::vector<float> x = {1, 5, -2, 5, 3};
  EXPECT_EQ(argmax(x.data(), 5), 1);
  EXPECT_EQ(argmax(x.data(), 1), 0);
  const std::vector<float> neg = {-3, -1, -1};
  EXPECT_EQ(argmax(neg.data(), 3), 1);
}

// Plain rope over one head with the given inverse frequencies and magnitude.
std::vector<float> rope_formula(const std::vector<float>& v, int pos, RopeLayout layout,
                                int rot_dims, const std::vector<double>& inv_freq, double mscale) {
  std::vector<float> out = v;
  const int half = rot_dims / 2;
  for (int j = 0; j < half; ++j) {
    const int a = layout == RopeLayout::Interleaved ? 2 * j : j;
    const int b = layout == RopeLayout::Interleaved ? 2 * j + 1 : j + half;
    const double c = std::cos(pos * inv_freq[j]) * mscale, s = std::sin(pos * inv_freq[j]) * mscale;
    out[a] = float(v[a] * c - v[b] * s);
    out[b] = float(v[a] * s + v[b] * c);
  }
  return out;
}

std::vector<double> plain_freqs(int rot_dims, double theta) {
  std::vector<double> f(rot_dims / 2);
  for (int j = 0; j < rot_dims / 2; ++j) f[j] = std::pow(theta, -2.0 * j / rot_dims);
  return f;
}

// On every ISA path: close to the formula, and the SIMD paths bit-identical to the scalar one
// (they repeat its products and sums).
void check_rope(const RopeParams& p, int64_t head_dim, const std::vector<double>& freqs,
                double mscale) {
  const int64_t n_tok = 3, n_heads = 2;
  const std::vector<int32_t> pos = {0, 7, 131071};
  const auto orig = random_floats(n_tok * n_heads * head_dim, 11);
  std::vector<float> scalar;
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    auto x = orig;
    rope(x.data(), pos.data(), n_tok, n_heads, head_dim, p);
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t off = (t * n_heads + h) * head_dim;
        const std::vector<float> v(orig.begin() + off, orig.begin() + off + head_dim);
        const auto ref = rope_formula(v, pos[t], p.layout, p.rot_dims, freqs, mscale);
        for (int64_t d = 0; d < head_dim; ++d) {
          EXPECT_NEAR(x[off + d], ref[d], 2e-6)
              << testing::isa_label(isa) << " token " << t << " dim " << d;
        }
      }
    }
    if (isa == Isa::Scalar) scalar = x;
    EXPECT_EQ(x, scalar) << testing::isa_label(isa);
  }
}

TEST(Rope, PlainBothLayoutsAndPartialRotation) {
  for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::Neox}) {
    RopeParams p;
    p.layout = layout;
    p.rot_dims = 64;
    p.theta = 10000.0f;
    check_rope(p, 64, plain_freqs(64, 10000.0), 1.0);
    p.rot_dims = 32;  // only the leading dims rotate
    p.theta = 1e6f;
    check_rope(p, 64, plain_freqs(32, 1e6), 1.0);
    p.rot_dims = 20;  // not a whole SIMD step of pairs or halves
    check_rope(p, 26, plain_freqs(20, 1e6), 1.0);
  }
}

TEST(Rope, LinearScaling) {
  RopeParams p;
  p.rot_dims = 64;
  p.scaling = RopeParams::Scaling::Linear;
  p.factor = 4.0f;
  auto f = plain_freqs(64, 10000.0);
  for (double& v : f) v /= 4.0;
  check_rope(p, 64, f, 1.0);
}

// Meta's Llama 3.1 rule, written out independently.
TEST(Rope, Llama3Scaling) {
  RopeParams p;
  p.rot_dims = 128;
  p.theta = 500000.0f;
  p.scaling = RopeParams::Scaling::Llama3;
  p.factor = 8.0f;
  p.low_freq_factor = 1.0f;
  p.high_freq_factor = 4.0f;
  p.original_context = 8192;
  auto f = plain_freqs(128, 500000.0);
  const double low_wavelen = 8192.0 / 1.0, high_wavelen = 8192.0 / 4.0;
  int kept = 0, divided = 0, blended = 0;
  for (double& v : f) {
    const double wavelen = 2 * M_PI / v;
    if (wavelen < high_wavelen) {
      ++kept;
    } else if (wavelen > low_wavelen) {
      v /= 8.0;
      ++divided;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      v = (1 - smooth) * v / 8.0 + smooth * v;
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
  check_rope(p, 128, f, 1.0);
}

// YaRN as in Hugging Face's _compute_yarn_parameters.
TEST(Rope, YarnScaling) {
  RopeParams p;
  p.rot_dims = 64;
  p.theta = 10000.0f;
  p.scaling = RopeParams::Scaling::Yarn;
  p.factor = 4.0f;
  p.original_context = 4096;
  const double dim = 64, base = 10000.0;
  auto corr = [&](double rot) {
    return dim * std::log(4096.0 / (rot * 2 * M_PI)) / (2 * std::log(base));
  };
  const double low = std::max(std::floor(corr(32.0)), 0.0);
  const double high = std::min(std::ceil(corr(1.0)), dim - 1);
  auto f = plain_freqs(64, base);
  for (int j = 0; j < 32; ++j) {
    const double ramp = std::min(std::max((j - low) / (high - low), 0.0), 1.0);
    const double extrap = 1.0 - ramp;
    f[j] = f[j] / 4.0 * (1 - extrap) + f[j] * extrap;
  }
  check_rope(p, 64, f, 0.1 * std::log(4.0) + 1.0);
}

// Alternating parameter sets (local / global layers) each get their own frequencies.
TEST(Rope, AlternatingParams) {
  RopeParams a, b;
  a.rot_dims = b.rot_dims = 32;
  a.theta = 10000.0f;
  b.theta = 1e6f;
  for (int i = 0; i < 3; ++i) {
    check_rope(a, 32, plain_freqs(32, 10000.0), 1.0);
    check_rope(b, 32, plain_freqs(32, 1e6), 1.0);
  }
}

}  // namespace
}  // namespace dspark::cpu
