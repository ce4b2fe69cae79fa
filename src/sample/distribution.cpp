// Steps 5-8 of the processing order in sample.h (temperature, top-k, top-p, min-p) and the
// log-softmax behind reported logprobs.
#include <algorithm>
#include <cmath>
#include <limits>

#include "dspark/sample.h"

namespace dspark {

namespace {

constexpr float kGreedyTemperature = 1e-5f;

// NaN logits would poison every sum; they count as impossible tokens.
float clean(float logit) {
  return std::isnan(logit) ? -std::numeric_limits<float>::infinity() : logit;
}

}  // namespace

bool is_greedy(const SamplingParams& params) {
  return params.temperature <= kGreedyTemperature || params.top_k == 1;
}

int64_t greedy_token(const float* logits, int64_t vocab) {
  float max_logit = -std::numeric_limits<float>::infinity();
  int64_t argmax = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (clean(logits[i]) > max_logit) {
      max_logit = logits[i];
      argmax = i;
    }
  }
  return argmax;
}

void processed_distribution(const SamplingParams& params, const float* logits, int64_t vocab,
                            std::vector<float>* probs) {
  probs->assign(size_t(std::max<int64_t>(vocab, 0)), 0.0f);
  if (vocab <= 0) return;
  const int64_t argmax = greedy_token(logits, vocab);
  auto& p = *probs;
  if (argmax < 0) {
    std::fill(p.begin(), p.end(), 1.0f / float(vocab));
    return;
  }
  if (is_greedy(params)) {
    p[size_t(argmax)] = 1.0f;
    return;
  }

  // Weights relative to the maximum (which gets exactly 1), so min-p needs no normalisation.
  const float max_logit = logits[argmax];
  const double inv_t = 1.0 / double(params.temperature);
  for (int64_t i = 0; i < vocab; ++i) {
    p[size_t(i)] = float(std::exp((double(clean(logits[i])) - double(max_logit)) * inv_t));
  }

  const bool use_top_k = params.top_k > 0;
  const bool use_top_p = params.top_p < 1.0f;
  if (use_top_k || use_top_p) {
    std::vector<int32_t> order;  // [n_candidates] ids with non-zero weight, most likely first
    order.reserve(size_t(vocab));
    for (int64_t i = 0; i < vocab; ++i) {
      if (p[size_t(i)] > 0.0f) order.push_back(int32_t(i));
    }
    auto more_likely = [&](int32_t a, int32_t b) {
      return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b);
    };
    size_t keep = order.size();
    const bool truncated_by_k = use_top_k && size_t(params.top_k) < keep;
    if (truncated_by_k) {
      keep = size_t(params.top_k);
      std::partial_sort(order.begin(), order.begin() + long(keep), order.end(), more_likely);
    }
    if (use_top_p) {
      double total = 0;
      for (size_t i = 0; i < keep; ++i) total += p[size_t(order[i])];
      const double target = double(params.top_p) * total;
      // The nucleus is usually a small prefix: sort a growing prefix until it holds the target
      // mass rather than the whole vocabulary (top-k already sorted its survivors).
      size_t sorted = truncated_by_k ? keep : std::min<size_t>(keep, 256);
      double cum = 0;
      size_t n = 0;
      for (;;) {
        if (!truncated_by_k) {
          std::partial_sort(order.begin() + long(n), order.begin() + long(sorted), order.end(),
                            more_likely);
        }
        while (n < sorted && cum < target) cum += p[size_t(order[n++])];
        if (cum >= target || sorted == keep) break;
        sorted = std::min(keep, sorted * 4);
      }
      keep = n;
    }
    for (size_t i = keep; i < order.size(); ++i) p[size_t(order[i])] = 0.0f;
  }

  if (params.min_p > 0.0f) {
    for (float& w : p) {
      if (w < params.min_p) w = 0.0f;
    }
  }

  double total = 0;
  for (float w : p) total += w;
  const double inv_total = 1.0 / total;  // >= 1: the maximum always survives with weight 1
  for (float& w : p) w = float(double(w) * inv_total);
}

TokenLogprobs compute_logprobs(const float* logits, int64_t vocab, int32_t token, int32_t k) {
  TokenLogprobs out;
  out.token = token;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (vocab <= 0) {
    out.logprob = kNegInf;
    return out;
  }
  float max_logit = kNegInf;
  for (int64_t i = 0; i < vocab; ++i) max_logit = std::max(max_logit, clean(logits[i]));
  double sum = 0;
  if (max_logit != kNegInf) {
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(clean(logits[i])) - max_logit);
  }
  // With every logit -inf there is no distribution: all logprobs are -inf.
  const double log_z = max_logit == kNegInf ? 0.0 : double(max_logit) + std::log(sum);
  auto logprob = [&](int64_t id) {
    const float l = clean(logits[id]);
    return l == kNegInf ? kNegInf : float(double(l) - log_z);
  };
  out.logprob = token >= 0 && int64_t(token) < vocab ? logprob(token) : kNegInf;

  const size_t n_top = size_t(std::clamp<int64_t>(k, 0, vocab));
  if (n_top == 0) return out;
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) ids[size_t(i)] = int32_t(i);
  std::partial_sort(ids.begin(), ids.begin() + long(n_top), ids.end(), [&](int32_t a, int32_t b) {
    const float la = clean(logits[a]), lb = clean(logits[b]);
    return la > lb || (la == lb && a < b);
  });
  out.top.reserve(n_top);
  for (size_t i = 0; i < n_top; ++i) out.top.emplace_back(ids[i], logprob(ids[i]));
  return out;
}

}  // namespace dspark
