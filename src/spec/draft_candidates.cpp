// Candidate trees of the draft-model drafter (see draft_candidates.h).
#include "draft_candidates.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace dspark::spec::draft_detail {

namespace {

constexpr float kGreedyTemperature = 1e-5f;
// A sampled sibling group draws from the top ids of the processed distribution only: the tail
// beyond them almost never gets drawn, and q stays small (it is recorded in the tree).
constexpr size_t kMaxQIds = 64;

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// NaN logits count as impossible tokens.
float clean(float logit) {
  return std::isnan(logit) ? -std::numeric_limits<float>::infinity() : logit;
}

}  // namespace

uint64_t DraftRng::next() {
  state_ += 0x9e3779b97f4a7c15ull;
  return mix(state_);
}

double DraftRng::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

uint64_t draft_seed(uint64_t request_seed, int64_t request_id, int64_t n_tokens) {
  uint64_t s = mix(request_seed + 0x9e3779b97f4a7c15ull);
  s = mix(s ^ static_cast<uint64_t>(request_id));
  return mix(s ^ static_cast<uint64_t>(n_tokens));
}

CandidateTree::CandidateTree(int32_t max_nodes, int32_t top_k, const SamplingParams* params,
                             uint64_t seed)
    : max_nodes_(max_nodes),
      top_k_(top_k),
      params_(params != nullptr && params->temperature > kGreedyTemperature ? params : nullptr),
      rng_(seed) {}

void CandidateTree::add_child(int32_t parent, int32_t token, float confidence, int32_t q_index) {
  Candidate c;
  c.token = token;
  c.parent = parent;
  c.depth = parent < 0 ? 1 : node(parent).depth + 1;
  c.confidence = confidence;
  c.q_index = q_index;
  c.score = (parent < 0 ? 1.0 : node(parent).score) * double(confidence);
  // A node's children are all added by one expand call, consecutively: the previous candidate
  // is the previous sibling when it has the same parent.
  if (!nodes_.empty() && nodes_.back().parent == parent) {
    c.score = std::min(c.score, nodes_.back().score);
  }
  nodes_.push_back(c);
}

void CandidateTree::expand(int32_t parent, const float* logits, int64_t vocab) {
  if (vocab <= 0 || top_k_ <= 0) return;
  if (greedy()) {
    expand_greedy(parent, logits, vocab);
  } else {
    expand_sampled(parent, logits, vocab);
  }
}

// Top-k of the raw logits (ties: lower id), each with its probability under the softmax.
void CandidateTree::expand_greedy(int32_t parent, const float* logits, int64_t vocab) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) max_logit = std::max(max_logit, clean(logits[i]));
  if (!std::isfinite(max_logit)) return;  // nothing is possible (or the logits overflowed)
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) total += std::exp(double(clean(logits[i]) - max_logit));
  order_.resize(size_t(vocab));
  for (int64_t i = 0; i < vocab; ++i) order_[size_t(i)] = int32_t(i);
  const size_t k = std::min(size_t(top_k_), size_t(vocab));
  std::partial_sort(order_.begin(), order_.begin() + long(k), order_.end(),
                    [&](int32_t a, int32_t b) {
                      const float la = clean(logits[a]), lb = clean(logits[b]);
                      return la > lb || (la == lb && a < b);
                    });
  for (size_t j = 0; j < k; ++j) {
    const int32_t id = order_[j];
    if (clean(logits[id]) == -std::numeric_limits<float>::infinity()) break;  // the rest too
    const double p = std::exp(double(clean(logits[id]) - max_logit)) / total;
    add_child(parent, id, std::clamp(float(p), 0.0f, 1.0f), -1);
  }
}

// q = the processed distribution restricted to its kMaxQIds most likely ids, renormalised; the
// children are drawn from q without replacement, and q is recorded exactly as drawn from.
void CandidateTree::expand_sampled(int32_t parent, const float* logits, int64_t vocab) {
  processed_distribution(*params_, logits, vocab, &probs_);
  order_.clear();
  for (int64_t i = 0; i < vocab; ++i) {
    if (probs_[size_t(i)] > 0.0f) order_.push_back(int32_t(i));
  }
  const size_t n = std::min(order_.size(), kMaxQIds);
  if (n == 0) return;
  std::partial_sort(order_.begin(), order_.begin() + long(n), order_.end(),
                    [&](int32_t a, int32_t b) {
                      const float pa = probs_[size_t(a)], pb = probs_[size_t(b)];
                      return pa > pb || (pa == pb && a < b);
                    });
  double total = 0.0;
  for (size_t j = 0; j < n; ++j) total += probs_[size_t(order_[j])];
  SparseDist q;
  for (size_t j = 0; j < n; ++j) {
    const float p = float(double(probs_[size_t(order_[j])]) / total);
    if (p <= 0.0f) continue;  // underflow after renormalising: never drawn
    q.ids.push_back(order_[j]);
    q.probs.push_back(p);
  }
  const int32_t q_index = static_cast<int32_t>(q_.size());
  // Successive draws without replacement from the recorded float probabilities.
  std::vector<double> left(q.probs.begin(), q.probs.end());  // [n_q] 0 once drawn
  double mass = 0.0;
  for (double w : left) mass += w;
  const size_t k = std::min(size_t(top_k_), q.ids.size());
  // The chance that this draw is the accepted one, guessed before drawing it: earlier siblings
  // all missed, then the draft's most likely remaining id's share of the remaining mass. It must
  // not depend on the drawn token itself: verifying a sampled node because of its own value
  // would bias acceptance (spec.h, exactness rules).
  double reach = 1.0;
  for (size_t draw = 0; draw < k; ++draw) {
    const double top = *std::max_element(left.begin(), left.end());
    const float confidence = static_cast<float>(std::clamp(reach * top / mass, 0.0, 1.0));
    reach *= std::max(0.0, 1.0 - top / mass);
    const double target = rng_.uniform() * mass;
    double cum = 0.0;
    size_t pick = left.size();
    for (size_t j = 0; j < left.size(); ++j) {
      if (left[j] <= 0.0) continue;
      pick = j;  // the last id with mass left, should rounding leave cum below target
      cum += left[j];
      if (cum > target) break;
    }
    add_child(parent, q.ids[pick], confidence, q_index);
    mass -= left[pick];
    left[pick] = 0.0;
  }
  q_.push_back(std::move(q));
}

std::vector<int32_t> CandidateTree::ranked() const {
  std::vector<int32_t> r(nodes_.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = int32_t(i);
  std::stable_sort(r.begin(), r.end(),
                   [&](int32_t a, int32_t b) { return node(a).score > node(b).score; });
  return r;
}

std::vector<int32_t> CandidateTree::frontier(int32_t depth) const {
  const std::vector<int32_t> r = ranked();
  std::vector<int32_t> out;
  const size_t budget = std::min(r.size(), size_t(std::max(max_nodes_, 0)));
  for (size_t i = 0; i < budget; ++i) {
    if (node(r[i]).depth == depth) out.push_back(r[i]);
  }
  return out;
}

std::vector<int32_t> CandidateTree::ancestor_slots(int32_t at) const {
  std::vector<int32_t> slots;
  for (int32_t up = node(at).parent; up >= 0; up = node(up).parent) slots.push_back(node(up).slot);
  std::reverse(slots.begin(), slots.end());
  return slots;
}

DraftTree CandidateTree::finish() const {
  std::vector<int32_t> keep = ranked();
  keep.resize(std::min(keep.size(), size_t(std::max(max_nodes_, 0))));
  std::sort(keep.begin(), keep.end());
  DraftTree tree;
  std::vector<int32_t> index(nodes_.size(), -1);  // [n_candidates] node in tree, -1: dropped
  std::unordered_map<int32_t, int32_t> q_map;     // candidate q index -> tree q index
  for (int32_t c : keep) {
    const Candidate& n = node(c);
    int32_t qi = -1;
    if (n.q_index >= 0) {
      const auto [it, fresh] = q_map.emplace(n.q_index, int32_t(tree.q.size()));
      if (fresh) tree.q.push_back(q_[size_t(n.q_index)]);
      qi = it->second;
    }
    index[size_t(c)] =
        tree.add(n.token, n.parent < 0 ? -1 : index[size_t(n.parent)], n.confidence, qi);
  }
  return tree;
}

}  // namespace dspark::spec::draft_detail
