// Steps-per-second table: profiled step latencies by forward size, refreshed by live steps.
#include <algorithm>
#include <cmath>

#include "dspark/spec.h"

namespace dspark::spec {

SpsTable::SpsTable(std::vector<int32_t> sizes, std::vector<double> seconds) {
  const size_t n = std::min(sizes.size(), seconds.size());
  for (size_t i = 0; i < n; ++i) {
    const bool ascending = sizes_.empty() || sizes[i] > sizes_.back();
    if (sizes[i] > 0 && ascending && std::isfinite(seconds[i]) && seconds[i] > 0.0) {
      sizes_.push_back(sizes[i]);
      seconds_.push_back(seconds[i]);
    }
  }
}

double SpsTable::latency(int32_t n_tokens) const {
  if (sizes_.empty()) return 0.0;
  // Below the first profiled size a step costs at least what the smallest one did.
  if (n_tokens <= sizes_.front()) return seconds_.front();
  if (sizes_.size() == 1) return seconds_.front();  // no slope to follow
  const auto upper = std::lower_bound(sizes_.begin(), sizes_.end(), n_tokens);
  // Beyond the last size: extend the last segment (never sloping down, so latency stays
  // positive and larger batches never look cheaper than the largest profiled one).
  const size_t hi =
      upper == sizes_.end() ? sizes_.size() - 1 : static_cast<size_t>(upper - sizes_.begin());
  const size_t lo = hi - 1;
  const double slope = (seconds_[hi] - seconds_[lo]) / (sizes_[hi] - sizes_[lo]);
  if (upper == sizes_.end()) return seconds_[hi] + std::max(0.0, slope) * (n_tokens - sizes_[hi]);
  return seconds_[lo] + slope * (n_tokens - sizes_[lo]);
}

double SpsTable::sps(int32_t n_tokens) const {
  const double seconds = latency(n_tokens);
  return seconds > 0.0 ? 1.0 / seconds : 0.0;
}

void SpsTable::observe(int32_t n_tokens, double seconds) {
  if (sizes_.empty() || !std::isfinite(seconds) || seconds <= 0.0) return;
  // Beyond the profile there is no shape to map a step onto: a 500-token prefill step would
  // pass for the largest size and make it look several times dearer.
  if (n_tokens > sizes_.back()) return;
  // The profile says how the sizes compare, a live step how fast the machine runs now (longer
  // contexts, other processes): every size moves by the step's ratio to its prediction. Moving
  // only the nearest size left the sizes the controller had stopped trying at their start-up
  // latencies while the decode size slowed with growing contexts, so larger steps looked like
  // bargains (16 requests verified drafts at 0.96 acceptance and lost 7%).
  const double predicted = latency(n_tokens);
  if (!(predicted > 0.0)) return;
  const double factor = 1.0 + kAlpha * (seconds / predicted - 1.0);
  for (double& s : seconds_) s *= factor;
}

const std::vector<int32_t>& SpsTable::sizes() const {
  return sizes_;
}

}  // namespace dspark::spec
