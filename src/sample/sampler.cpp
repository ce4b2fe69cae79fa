#include <algorithm>
#include <cmath>
#include <numeric>

#include "dspark/sample.h"

namespace dspark {

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (params_.temperature <= 1e-5f || params_.top_k == 1) {
    return int32_t(std::max_element(logits, logits + vocab) - logits);
  }
  candidates_.resize(size_t(vocab));
  std::iota(candidates_.begin(), candidates_.end(), 0);
  // Sorting by logit (ties by id) keeps the result independent of the input order.
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && size_t(params_.top_k) < keep) {
    keep = size_t(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + long(keep), candidates_.end(),
                      by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);

  const float inv_t = 1.0f / params_.temperature;
  const float max_logit = logits[candidates_[0]];
  probs_.resize(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    probs_[i] = std::exp((logits[candidates_[i]] - max_logit) * inv_t);
    total += probs_[i];
  }
  // min-p: drop tokens whose probability is below min_p times the top probability (which is 1
  // before normalisation, as probs_ are relative to the maximum).
  if (params_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && probs_[n] >= params_.min_p) ++n;
    for (size_t i = n; i < keep; ++i) total -= probs_[i];
    keep = n;
  }
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += probs_[n++];
      if (cum >= params_.top_p * total) break;
    }
    total = cum;
    keep = n;
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  double r = uniform(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= probs_[i];
    if (r < 0) return candidates_[i];
  }
  return candidates_[keep - 1];
}

}  // namespace dspark
