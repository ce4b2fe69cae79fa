// Online per-depth Platt scaling of drafter confidences (dspark-spec.md section 5).
#include <algorithm>
#include <array>
#include <cmath>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

// Confidences are clamped away from 0 and 1 so their logit stays finite.
constexpr double kEps = 1e-6;

double logit(double c) {
  const double x = std::clamp(std::isfinite(c) ? c : 0.0, kEps, 1.0 - kEps);
  return std::log(x) - std::log1p(-x);
}

double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// Weight of a prior pulling each fit toward the identity (T 1, b 0), in observations: keeps the
// fit finite when the labels are separable (every round accepted, say) and is negligible
// against the kMinRounds rounds a fit needs.
constexpr double kPriorWeight = 1.0;
constexpr int32_t kMaxNewtonSteps = 50;

// Logistic regression of label on scale * x + bias, started at the current fit.
void fit_depth(std::span<const double> x, std::span<const uint8_t> label, double& scale,
               double& bias) {
  // Newton's method on the mean log-loss plus the prior; the loss is convex in (scale, bias),
  // and steps are capped at 1 so a far start cannot overshoot.
  double a = scale, b = bias;
  for (int32_t step = 0; step < kMaxNewtonSteps; ++step) {
    double ga = kPriorWeight * (a - 1.0), gb = kPriorWeight * b;
    double haa = kPriorWeight, hab = 0.0, hbb = kPriorWeight;
    for (size_t i = 0; i < x.size(); ++i) {
      const double p = sigmoid(a * x[i] + b);
      const double r = p - (label[i] ? 1.0 : 0.0);
      const double w = p * (1.0 - p);
      ga += r * x[i];
      gb += r;
      haa += w * x[i] * x[i];
      hab += w * x[i];
      hbb += w;
    }
    const double det = haa * hbb - hab * hab;
    if (!(det > 0.0)) break;
    double da = (hbb * ga - hab * gb) / det;
    double db = (haa * gb - hab * ga) / det;
    const double size = std::max(std::abs(da), std::abs(db));
    if (size > 1.0) {
      da /= size;
      db /= size;
    }
    a = std::clamp(a - da, 1.0 / Calibrator::kMaxTemperature, 1.0 / Calibrator::kMinTemperature);
    b = std::clamp(b - db, -Calibrator::kMaxBias, Calibrator::kMaxBias);
    if (size < 1e-7) break;
  }
  scale = a;
  bias = b;
}

}  // namespace

Calibrator::Calibrator(int32_t max_depth, int32_t refit_every)
    : max_depth_(std::max(1, max_depth)),
      refit_every_(std::max(0, refit_every)),
      scale_(static_cast<size_t>(max_depth_), 1.0),
      bias_(static_cast<size_t>(max_depth_), 0.0),
      raw_(static_cast<size_t>(kCapacity) * static_cast<size_t>(max_depth_), 0.0f),
      n_verified_(kCapacity, 0),
      n_accepted_(kCapacity, 0) {}

float Calibrator::calibrate(int32_t depth, float raw) const {
  const auto k = static_cast<size_t>(std::clamp(depth, 1, max_depth_) - 1);
  return static_cast<float>(sigmoid(scale_[k] * logit(raw) + bias_[k]));
}

void Calibrator::observe(std::span<const float> raw_path, int32_t n_accepted) {
  const auto n = static_cast<int32_t>(std::min(raw_path.size(), static_cast<size_t>(max_depth_)));
  if (n == 0) return;  // nothing was verified: no evidence about any depth
  const auto slot = static_cast<size_t>(next_slot_);
  count_in_ece(slot, -1.0);  // the round it overwrites (none yet: no terms)
  for (int32_t k = 0; k < n; ++k) {
    raw_[slot * static_cast<size_t>(max_depth_) + static_cast<size_t>(k)] =
        raw_path[static_cast<size_t>(k)];
  }
  n_verified_[slot] = n;
  n_accepted_[slot] = std::clamp(n_accepted, 0, n);
  count_in_ece(slot, 1.0);
  next_slot_ = (next_slot_ + 1) % kCapacity;
  n_recorded_ = std::min(n_recorded_ + 1, kCapacity);
  n_rounds_ += 1;
  // Early rounds also refit at each power of two from kMinRounds, so a short session is
  // calibrated long before its first refit_every rounds are in.
  if (refit_every_ == 0) return;
  const bool early =
      n_rounds_ < refit_every_ && n_rounds_ >= kMinRounds && (n_rounds_ & (n_rounds_ - 1)) == 0;
  if (++since_refit_ >= refit_every_ || early) refit();
}

void Calibrator::count_in_ece(size_t slot, double sign) {
  const int32_t n = n_verified_[slot];
  const float* raw = &raw_[slot * static_cast<size_t>(max_depth_)];
  double survival = 1.0;  // calibrated survival through depth k
  for (int32_t k = 1; k <= n; ++k) {
    survival *= calibrate(k, raw[k - 1]);
    const auto b =
        static_cast<size_t>(std::clamp(static_cast<int32_t>(survival * kBins), 0, kBins - 1));
    ece_sum_x_[b] += sign * survival;
    ece_sum_y_[b] += n_accepted_[slot] >= k ? sign : 0.0;
    ece_n_ += sign > 0 ? 1 : -1;
  }
}

double Calibrator::ece() const {
  if (ece_n_ <= 0) return 0.0;
  double total = 0.0;
  for (size_t b = 0; b < ece_sum_x_.size(); ++b) total += std::abs(ece_sum_x_[b] - ece_sum_y_[b]);
  return total / static_cast<double>(ece_n_);
}

void Calibrator::refit() {
  since_refit_ = 0;
  std::vector<double> x;       // [n_k] logit of the raw confidence at depth k
  std::vector<uint8_t> label;  // [n_k] the node at depth k was accepted
  for (int32_t k = 1; k <= max_depth_; ++k) {
    x.clear();
    label.clear();
    for (int32_t r = 0; r < n_recorded_; ++r) {
      const auto at = static_cast<size_t>(r);
      // Depth k's acceptance given its parent's: only rounds that accepted depth k - 1.
      if (n_verified_[at] < k || n_accepted_[at] < k - 1) continue;
      x.push_back(logit(raw_[at * static_cast<size_t>(max_depth_) + static_cast<size_t>(k - 1)]));
      label.push_back(n_accepted_[at] >= k ? 1 : 0);
    }
    if (static_cast<int32_t>(x.size()) < kMinRounds) continue;
    fit_depth(x, label, scale_[static_cast<size_t>(k - 1)], bias_[static_cast<size_t>(k - 1)]);
  }
  // The fit changed: every recorded round's terms are computed again.
  ece_sum_x_.fill(0.0);
  ece_sum_y_.fill(0.0);
  ece_n_ = 0;
  for (int32_t r = 0; r < n_recorded_; ++r) count_in_ece(static_cast<size_t>(r), 1.0);
}

double Calibrator::temperature(int32_t depth) const {
  return 1.0 / scale_[static_cast<size_t>(std::clamp(depth, 1, max_depth_) - 1)];
}

double Calibrator::bias(int32_t depth) const {
  return bias_[static_cast<size_t>(std::clamp(depth, 1, max_depth_) - 1)];
}

int64_t Calibrator::n_rounds() const {
  return n_rounds_;
}

}  // namespace dspark::spec
