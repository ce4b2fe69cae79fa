// PayoffGuard: drafting at a load continues only while drafted steps beat plain decoding.
#include <algorithm>
#include <cmath>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

int32_t load_bucket(int32_t served) {
  return power_of_two_bucket(served, PayoffGuard::kBuckets);
}

}  // namespace

void PayoffGuard::observe(int32_t served, double plain_rate, double realised_rate) {
  if (!(std::isfinite(plain_rate) && std::isfinite(realised_rate)) || plain_rate <= 0.0 ||
      realised_rate <= 0.0) {
    return;
  }
  Load& load = loads_[load_bucket(served)];
  const double x = std::log(realised_rate / plain_rate);
  // The first steps average evenly (no start at 0 to forget); then a moving average.
  load.n_steps = std::min(load.n_steps + 1, 1 << 30);
  const double weight = std::max(kAlpha, 1.0 / double(load.n_steps));
  load.log_gain += weight * (x - load.log_gain);
}

bool PayoffGuard::allows(int32_t served) {
  Load& load = loads_[load_bucket(served)];
  if (load.n_steps < kMinSteps || load.log_gain >= std::log(kFloor)) {
    load.refused = 0;
    return true;
  }
  if (++load.refused >= kRetryEvery) {
    load.refused = 0;
    return true;
  }
  return false;
}

double PayoffGuard::gain(int32_t served) const {
  return std::exp(loads_[load_bucket(served)].log_gain);
}

}  // namespace dspark::spec
