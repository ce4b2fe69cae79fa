// Online sequential temperature scaling of drafter confidences (dspark-spec.md section 5).
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

double grid_temperature(int32_t i) {
  // log2 T from -2 to 3 in equal steps; the step count divides so that T = 1 is a grid point.
  const double step = 5.0 / (Calibrator::kGridPoints - 1);
  return std::exp2(-2.0 + step * i);
}

// 20-bin expected calibration error accumulated one (prediction, label) pair at a time.
class EceBins {
 public:
  void add(double x, bool label) {
    const auto b = static_cast<size_t>(
        std::clamp(static_cast<int32_t>(x * Calibrator::kBins), 0, Calibrator::kBins - 1));
    sum_x_[b] += x;
    sum_y_[b] += label ? 1.0 : 0.0;
    n_ += 1;
  }
  double ece() const {
    if (n_ == 0) return 0.0;
    double total = 0.0;
    for (size_t b = 0; b < sum_x_.size(); ++b) total += std::abs(sum_x_[b] - sum_y_[b]);
    return total / static_cast<double>(n_);
  }

 private:
  std::array<double, Calibrator::kBins> sum_x_{};
  std::array<double, Calibrator::kBins> sum_y_{};
  int64_t n_ = 0;
};

}  // namespace

Calibrator::Calibrator(int32_t max_depth, int32_t refit_every)
    : max_depth_(std::max(1, max_depth)),
      refit_every_(std::max(0, refit_every)),
      temperature_(static_cast<size_t>(max_depth_), 1.0),
      raw_(static_cast<size_t>(kCapacity) * static_cast<size_t>(max_depth_), 0.0f),
      n_verified_(kCapacity, 0),
      n_accepted_(kCapacity, 0) {}

float Calibrator::calibrate(int32_t depth, float raw) const {
  const int32_t k = std::clamp(depth, 1, max_depth_);
  return static_cast<float>(sigmoid(logit(raw) / temperature_[static_cast<size_t>(k - 1)]));
}

void Calibrator::observe(std::span<const float> raw_path, int32_t n_accepted) {
  const auto n = static_cast<int32_t>(std::min(raw_path.size(), static_cast<size_t>(max_depth_)));
  if (n == 0) return;  // nothing was verified: no evidence about any depth
  const auto slot = static_cast<size_t>(next_slot_);
  for (int32_t k = 0; k < n; ++k) {
    raw_[slot * static_cast<size_t>(max_depth_) + static_cast<size_t>(k)] =
        raw_path[static_cast<size_t>(k)];
  }
  n_verified_[slot] = n;
  n_accepted_[slot] = std::clamp(n_accepted, 0, n);
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

double Calibrator::survival(int32_t round, int32_t k, const std::vector<double>& temps) const {
  const float* raw = &raw_[static_cast<size_t>(round) * static_cast<size_t>(max_depth_)];
  double s = 1.0;
  for (int32_t i = 0; i < k; ++i) s *= sigmoid(logit(raw[i]) / temps[static_cast<size_t>(i)]);
  return s;
}

double Calibrator::ece() const {
  EceBins bins;
  for (int32_t r = 0; r < n_recorded_; ++r) {
    const int32_t n = n_verified_[static_cast<size_t>(r)];
    for (int32_t k = 1; k <= n; ++k) {
      bins.add(survival(r, k, temperature_), n_accepted_[static_cast<size_t>(r)] >= k);
    }
  }
  return bins.ece();
}

void Calibrator::refit() {
  since_refit_ = 0;
  // prefix[r]: calibrated survival of round r through the depths fitted so far.
  std::vector<double> prefix(static_cast<size_t>(n_recorded_), 1.0);
  // The rounds that verified depth k, gathered contiguously for the grid search.
  std::vector<int32_t> rounds;  // [n_k] round index
  std::vector<float> logits;    // [n_k] logit of the raw confidence at depth k
  std::vector<double> before;   // [n_k] survival through depth k - 1
  std::vector<uint8_t> label;   // [n_k] the first k nodes were all accepted
  for (int32_t k = 1; k <= max_depth_; ++k) {
    rounds.clear();
    logits.clear();
    before.clear();
    label.clear();
    for (int32_t r = 0; r < n_recorded_; ++r) {
      const auto at = static_cast<size_t>(r);
      if (n_verified_[at] < k) continue;
      rounds.push_back(r);
      const size_t cell = at * static_cast<size_t>(max_depth_) + static_cast<size_t>(k - 1);
      logits.push_back(static_cast<float>(logit(raw_[cell])));
      before.push_back(prefix[at]);
      label.push_back(n_accepted_[at] >= k ? 1 : 0);
    }
    double& t_k = temperature_[static_cast<size_t>(k - 1)];
    if (static_cast<int32_t>(rounds.size()) >= kMinRounds) {
      double best_ece = INFINITY;
      for (int32_t g = 0; g < kGridPoints; ++g) {
        const double t = grid_temperature(g);
        const auto inv_t = static_cast<float>(1.0 / t);
        EceBins bins;
        for (size_t i = 0; i < rounds.size(); ++i) {
          // Float exp: the grid search dominates refit time and ECE needs no more precision.
          const float s = 1.0f / (1.0f + std::exp(-logits[i] * inv_t));
          bins.add(before[i] * s, label[i] != 0);
        }
        const double e = bins.ece();
        // Equal errors prefer the temperature nearest 1 (least change).
        if (e < best_ece - 1e-12 ||
            (e <= best_ece + 1e-12 && std::abs(std::log(t)) < std::abs(std::log(t_k)))) {
          best_ece = std::min(best_ece, e);
          t_k = t;
        }
      }
    }
    for (size_t i = 0; i < rounds.size(); ++i) {
      prefix[static_cast<size_t>(rounds[i])] *= sigmoid(logits[i] / t_k);
    }
  }
}

double Calibrator::temperature(int32_t depth) const {
  return temperature_[static_cast<size_t>(std::clamp(depth, 1, max_depth_) - 1)];
}

int64_t Calibrator::n_rounds() const {
  return n_rounds_;
}

}  // namespace dspark::spec
