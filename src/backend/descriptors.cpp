// The backend-neutral descriptors of backend.h: weight views, attention arguments and RoPE
// frequencies (shared by every backend so that they rotate by the same angles).
#include <algorithm>
#include <cmath>

#include "dspark/backend.h"

namespace dspark {

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

WeightView WeightView::from(const TensorInfo& t) {
  WeightView w;
  w.type = t.type;
  w.rows = t.rows();
  w.cols = t.cols();
  w.data = t.data;
  w.row_bytes = dtype_row_bytes(t.type, w.cols);
  return w;
}

WeightView WeightView::first_rows(int64_t n) const {
  WeightView w = *this;
  w.rows = std::clamp<int64_t>(n, 0, rows);
  return w;
}

AttentionArgs attention_args(const AttentionPlan& plan, int64_t n_heads, int64_t n_kv_heads,
                             int64_t head_dim, const float* q, const uint16_t* k_cache,
                             const uint16_t* v_cache, float* out) {
  AttentionArgs a;
  a.n_tok = plan.n_tok();
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.head_dim = head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  a.q = q;
  a.k_cache = k_cache;
  a.v_cache = v_cache;
  a.plan = &plan;
  a.out = out;
  return a;
}

std::vector<double> rope_inv_frequencies(const RopeParams& p, double* mscale) {
  const int half = p.rot_dims / 2;
  const double base = p.theta;
  std::vector<double> f(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) f[i] = std::pow(base, -2.0 * i / double(p.rot_dims));
  *mscale = 1.0;
  const double factor = p.factor;
  using S = RopeParams::Scaling;
  if (p.scaling == S::Linear && factor > 0.0) {
    for (double& v : f) v /= factor;
  } else if (p.scaling == S::Llama3 && p.original_context > 0 && factor > 0.0) {
    // Meta's Llama 3 rule: keep short wavelengths, divide long ones by factor, blend between.
    const double old_ctx = double(p.original_context);
    const double low_wavelen = old_ctx / p.low_freq_factor;
    const double high_wavelen = old_ctx / p.high_freq_factor;
    for (double& v : f) {
      const double wavelen = 2.0 * kPi / v;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        v /= factor;
      } else {
        const double smooth = (old_ctx / wavelen - p.low_freq_factor) /
                              double(p.high_freq_factor - p.low_freq_factor);
        v = (1.0 - smooth) * v / factor + smooth * v;
      }
    }
  } else if (p.scaling == S::Yarn && p.original_context > 0 && factor > 0.0) {
    // YaRN (as in Hugging Face): interpolate the low frequencies, extrapolate the high ones,
    // with a linear ramp between the dims that rotate beta_fast and beta_slow times over the
    // original context; cos/sin grow by 0.1 ln(factor) + 1.
    const double dim = p.rot_dims;
    auto correction_dim = [&](double rotations) {
      return dim * std::log(double(p.original_context) / (rotations * 2.0 * kPi)) /
             (2.0 * std::log(base));
    };
    double low = std::max(std::floor(correction_dim(p.yarn_beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(p.yarn_beta_slow)), dim - 1.0);
    if (low == high) high += 0.001;
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double extrapolate = 1.0 - ramp;
      f[i] = f[i] / factor * (1.0 - extrapolate) + f[i] * extrapolate;
    }
    if (factor > 1.0) *mscale = 0.1 * std::log(factor) + 1.0;
  }
  return f;
}

}  // namespace dspark
