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
  // Nearest profiled size; a tie goes to the smaller one.
  const auto upper = std::lower_bound(sizes_.begin(), sizes_.end(), n_tokens);
  size_t at = static_cast<size_t>(upper - sizes_.begin());
  if (at == sizes_.size() || (at > 0 && n_tokens - sizes_[at - 1] <= sizes_[at] - n_tokens)) {
    at -= 1;
  }
  // The step tells how fast the machine runs now, the table how its sizes compare: the bucket
  // takes the step's latency scaled to its own size, so steps between sizes do not bias it.
  const double predicted = latency(n_tokens);
  const double scaled = predicted > 0.0 ? seconds * seconds_[at] / predicted : seconds;
  seconds_[at] = (1.0 - kAlpha) * seconds_[at] + kAlpha * scaled;
}

const std::vector<int32_t>& SpsTable::sizes() const {
  return sizes_;
}

}  // namespace dspark::spec
