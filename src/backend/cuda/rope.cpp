// Rotary position embedding: argument checks and the frequency table. The frequencies follow
// cpu::rope's rules (computed in double, scaled as the model's rope_scaling says) so both
// backends rotate by the same angles.
#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

#include "cuda_error.h"
#include "dspark/backend_cuda.h"
#include "launchers.h"

namespace dspark::cuda {
namespace {

static_assert(kMaxRopeDims == 2 * kernels::kRopeMaxPairs);

constexpr double kPi = 3.14159265358979323846;

// theta^(-2i/rot_dims) for each pair, then the scaling: Linear divides every frequency;
// Llama3 divides the long wavelengths and blends the middle band; YaRN blends interpolated
// and extrapolated frequencies along a ramp and scales cos/sin by 0.1 ln(factor) + 1.
void fill_frequencies(const RopeParams& p, kernels::RopeTable& table) {
  const int half = p.rot_dims / 2;
  const double base = p.theta;
  double* f = table.inv_freq;
  for (int i = 0; i < half; ++i) f[i] = std::pow(base, -2.0 * i / double(p.rot_dims));
  table.mscale = 1.0;
  const double factor = p.factor;
  using Scaling = RopeParams::Scaling;
  if (p.scaling == Scaling::Linear && factor > 0.0) {
    for (int i = 0; i < half; ++i) f[i] /= factor;
  } else if (p.scaling == Scaling::Llama3 && p.original_context > 0 && factor > 0.0) {
    const double context = double(p.original_context);
    const double low_wavelength = context / p.low_freq_factor;
    const double high_wavelength = context / p.high_freq_factor;
    for (int i = 0; i < half; ++i) {
      const double wavelength = 2.0 * kPi / f[i];
      if (wavelength < high_wavelength) continue;  // fast pairs keep their frequency
      if (wavelength > low_wavelength) {
        f[i] /= factor;
      } else {
        const double smooth = (context / wavelength - p.low_freq_factor) /
                              double(p.high_freq_factor - p.low_freq_factor);
        f[i] = (1.0 - smooth) * f[i] / factor + smooth * f[i];
      }
    }
  } else if (p.scaling == Scaling::Yarn && p.original_context > 0 && factor > 0.0) {
    const double dims = p.rot_dims;
    // The pair index that completes `rotations` turns over the original context.
    auto pair_for_rotations = [&](double rotations) {
      return dims * std::log(double(p.original_context) / (rotations * 2.0 * kPi)) /
             (2.0 * std::log(base));
    };
    const double low = std::max(std::floor(pair_for_rotations(p.yarn_beta_fast)), 0.0);
    double high = std::min(std::ceil(pair_for_rotations(p.yarn_beta_slow)), dims - 1.0);
    if (low == high) high += 0.001;  // avoid a zero-width ramp
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      f[i] = f[i] / factor * ramp + f[i] * (1.0 - ramp);
    }
    if (factor > 1.0) table.mscale = 0.1 * std::log(factor) + 1.0;
  }
}

}  // namespace

Status rope(float* x, const int32_t* positions, int64_t n_tok, int64_t n_heads, int64_t head_dim,
            const RopeParams& params, const Stream& stream) {
  auto bad = [](const std::string& message) { return detail::arg_error("rope", message); };
  if (n_tok < 0 || n_heads < 0 || head_dim < 0) {
    return bad("negative shape [" + std::to_string(n_tok) + ", " + std::to_string(n_heads) + ", " +
               std::to_string(head_dim) + "]");
  }
  const int rot = params.rot_dims;
  if (rot <= 0 || rot % 2 != 0 || rot > head_dim || rot > kMaxRopeDims) {
    return bad("rot_dims " + std::to_string(rot) + " must be even, in (0, head_dim = " +
               std::to_string(head_dim) + "] and at most " + std::to_string(kMaxRopeDims));
  }
  if (!(params.theta > 0.0f) || !std::isfinite(params.theta)) {
    return bad("theta " + std::to_string(params.theta) + " must be positive and finite");
  }
  if (n_tok == 0 || n_heads == 0) return Status::Ok();
  if (!x || !positions) return bad("null pointer");
  if (n_tok > INT_MAX || n_heads > INT_MAX || head_dim > INT_MAX ||
      n_tok * n_heads > INT64_MAX / head_dim || n_tok * n_heads * (rot / 2) / 256 >= INT_MAX) {
    return bad("shape [" + std::to_string(n_tok) + ", " + std::to_string(n_heads) + ", " +
               std::to_string(head_dim) + "] exceeds the kernel's range");
  }
  kernels::RopeTable table;
  table.rot_dims = rot;
  table.neox = params.layout == RopeLayout::Neox;
  fill_frequencies(params, table);
  return detail::check(
      kernels::launch_rope(x, positions, static_cast<int>(n_tok), static_cast<int>(n_heads),
                           static_cast<int>(head_dim), table, detail::native(stream)),
      "rope kernel launch");
}

}  // namespace dspark::cuda
