// DSpark Markov loop, confidence head and the draft sampling distribution.
#include "dspark_heads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dspark::spec::dspark_detail {

namespace {

constexpr float kGreedyTemperature = 1e-5f;

float sigmoid(double z) {
  const float c = static_cast<float>(1.0 / (1.0 + std::exp(-z)));
  return std::isfinite(c) ? c : 0.0f;  // NaN weights must not leave [0, 1]
}

// Uniform double in [0, 1) from 53 random bits.
double uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Probability of the top id under softmax(logits) over the whole vocabulary (the confidence of
// a greedy draft when the checkpoint has no confidence head).
float top_probability(const float* logits /*[n]*/, int64_t n, int64_t top) {
  const double max = logits[top];
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += std::exp(double(logits[i]) - max);
  return total > 0.0 ? static_cast<float>(1.0 / total) : 0.0f;
}

// q = the top kTopQ of softmax(logits / T) renormalised, zero-probability tail dropped.
SparseDist truncated_softmax(const float* logits /*[n]*/, int64_t n, float temperature,
                             std::vector<int32_t>& order /*[n]*/) {
  order.resize(size_t(n));
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = std::min<int64_t>(kTopQ, n);
  // Ties rank the smaller id first, so the draw does not depend on the sort's internals.
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  SparseDist q;
  const double max = double(logits[order[0]]) / temperature;
  double total = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    const double p = std::exp(double(logits[order[size_t(i)]]) / temperature - max);
    if (!(p > 0.0)) break;  // ranked: the rest underflow too
    q.ids.push_back(order[size_t(i)]);
    q.probs.push_back(static_cast<float>(p));
    total += p;
  }
  if (q.ids.empty()) {  // every logit -inf: a point mass on the top id keeps q proper
    q.ids.push_back(order[0]);
    q.probs.push_back(1.0f);
    return q;
  }
  for (float& p : q.probs) p = static_cast<float>(p / total);
  return q;
}

// Index into q.ids drawn with the probabilities q.probs.
size_t draw(const SparseDist& q, std::mt19937_64& rng) {
  const double u = uniform(rng);
  double cum = 0.0;
  for (size_t i = 0; i < q.probs.size(); ++i) {
    cum += q.probs[i];
    if (u < cum) return i;
  }
  return q.probs.size() - 1;  // rounding left u above the float sum
}

}  // namespace

void draft_chain(const Checkpoint& ck, const float* h, const float* U, int32_t n_nodes,
                 int32_t anchor, float temperature, std::mt19937_64& rng, HeadScratch& s,
                 Backend& backend, DraftTree& tree) {
  const int64_t V = ck.draft_vocab(), d = ck.d_model(), r = ck.markov_rank;
  s.w1_row.resize(size_t(r));
  s.logits.resize(size_t(V));
  const bool greedy = temperature <= kGreedyTemperature;
  int32_t prev = anchor;
  for (int32_t k = 0; k < n_nodes; ++k) {
    const float* u = U + int64_t{k} * V;
    float* L = s.logits.data();
    if (r > 0) {
      // bias_k = W2 . W1[prev]: the rank-r bigram correction from the previous token.
      backend.gather_weight_rows(ck.markov_w1, &prev, 1, s.w1_row.data());
      backend.matmul(ck.draft_w2, s.w1_row.data(), 1, L);
      backend.add(L, u, V);
    } else {
      std::copy(u, u + V, L);
    }
    // NaN would break the ranking below; it can never be drafted.
    for (int64_t i = 0; i < V; ++i) {
      if (std::isnan(L[i])) L[i] = -std::numeric_limits<float>::infinity();
    }

    float confidence = 0.0f;
    if (ck.confidence_head) {
      // Non-anticipating: z_k reads h_k and the previous token only, not the draft x_k.
      const float* w = ck.confidence_w.data();
      double z = ck.confidence_b;
      for (int64_t i = 0; i < d; ++i) z += double(w[i]) * h[int64_t{k} * d + i];
      for (int64_t i = 0; i < r; ++i) z += double(w[d + i]) * s.w1_row[size_t(i)];
      // Sequential temperature scaling (dspark-spec.md section 5) when the checkpoint has it.
      if (!ck.confidence_temperatures.empty()) z /= ck.confidence_temperatures[size_t(k)];
      confidence = sigmoid(z);
    }

    int32_t token = 0;
    int32_t q_index = -1;
    if (greedy) {
      const int64_t column = backend.argmax(L, V);
      token = ck.draft_token(column);
      if (!ck.confidence_head) confidence = top_probability(L, V, column);
    } else {
      SparseDist q = truncated_softmax(L, V, temperature, s.order);
      for (int32_t& id : q.ids) id = ck.draft_token(id);  // columns to vocabulary ids
      const size_t pick = draw(q, rng);
      token = q.ids[pick];
      if (!ck.confidence_head) confidence = q.probs[pick];
      q_index = static_cast<int32_t>(tree.q.size());
      tree.q.push_back(std::move(q));
    }
    tree.add(token, k == 0 ? -1 : k - 1, std::clamp(confidence, 0.0f, 1.0f), q_index);
    prev = token;
  }
}

}  // namespace dspark::spec::dspark_detail
