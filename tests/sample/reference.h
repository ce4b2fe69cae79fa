// Straightforward double-precision reference implementations of the processing steps in
// dspark/sample.h, written independently of src/sample to check it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "dspark/sample.h"

namespace dspark::ref {

inline bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Steps 1-4, token by token.
inline std::vector<double> adjusted_logits(const SamplingParams& p,
                                           const std::vector<float>& logits,
                                           const std::vector<int32_t>& prompt,
                                           const std::vector<int32_t>& output,
                                           const std::vector<int32_t>& eos) {
  std::vector<double> out(logits.size());
  for (size_t id = 0; id < logits.size(); ++id) {
    const auto tok = int32_t(id);
    double l = logits[id];
    for (const auto& [bias_id, bias] : p.logit_bias) {
      if (bias_id == tok) l += bias;
    }
    if (contains(prompt, tok) || contains(output, tok)) {
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
    const auto count = double(std::count(output.begin(), output.end(), tok));
    l -= p.presence_penalty * (count > 0 ? 1.0 : 0.0) + p.frequency_penalty * count;
    const bool blocked = contains(p.stop_token_ids, tok) || (!p.ignore_eos && contains(eos, tok));
    if (int64_t(output.size()) < p.min_tokens && blocked) {
      l = -std::numeric_limits<double>::infinity();
    }
    out[id] = l;
  }
  return out;
}

// Steps 5-8 by sorting (probability, id) pairs and renormalising after each filter.
inline std::vector<double> distribution(const SamplingParams& p,
                                        const std::vector<double>& logits) {
  const size_t n = logits.size();
  std::vector<double> probs(n, 0.0);
  if (p.temperature <= 1e-5f || p.top_k == 1) {
    probs[size_t(std::max_element(logits.begin(), logits.end()) - logits.begin())] = 1.0;
    return probs;
  }
  const double max_l = *std::max_element(logits.begin(), logits.end());
  std::vector<std::pair<double, int32_t>> cand;
  double z = 0;
  for (size_t i = 0; i < n; ++i) z += std::exp((logits[i] - max_l) / p.temperature);
  for (size_t i = 0; i < n; ++i) {
    const double q = std::exp((logits[i] - max_l) / p.temperature) / z;
    if (q > 0) cand.emplace_back(q, int32_t(i));
  }
  std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  auto renormalise = [&] {
    double s = 0;
    for (const auto& c : cand) s += c.first;
    for (auto& c : cand) c.first /= s;
  };
  if (p.top_k > 0 && size_t(p.top_k) < cand.size()) cand.resize(size_t(p.top_k));
  renormalise();
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < cand.size() && cum < p.top_p) cum += cand[keep++].first;
    cand.resize(keep);
    renormalise();
  }
  const double top = cand.front().first;
  std::erase_if(cand, [&](const auto& c) { return c.first < p.min_p * top; });
  renormalise();
  for (const auto& [q, id] : cand) probs[size_t(id)] = q;
  return probs;
}

}  // namespace dspark::ref
