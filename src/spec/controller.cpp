// DSpark's hardware-aware prefix scheduler (dspark-spec.md section 7, Algorithm 1) over trees:
// admits drafted nodes by descending survival while expected tokens * SPS(forward tokens) rises.
#include <algorithm>
#include <cmath>
#include <queue>
#include <tuple>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

// Depth of every node (1: child of the anchor); 0 for a node whose parent does not precede it
// or has depth 0, which keeps such nodes (and their subtrees) out of every admission.
std::vector<int32_t> depths(const Candidates& c) {
  const size_t n = c.survival.size() == c.parent.size() ? c.parent.size() : 0;
  std::vector<int32_t> d(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const int32_t up = c.parent[i];
    if (up == -1) {
      d[i] = 1;
    } else if (up >= 0 && static_cast<size_t>(up) < i && d[static_cast<size_t>(up)] > 0) {
      d[i] = d[static_cast<size_t>(up)] + 1;
    }
  }
  return d;
}

double usable(float survival) {
  return std::isfinite(survival) && survival > 0.0f ? static_cast<double>(survival) : 0.0;
}

struct Candidate {
  double survival;
  int32_t depth;
  int32_t request;
  int32_t node;
  // priority_queue pops the largest: higher survival, then shallower, lower request, lower node.
  bool operator<(const Candidate& o) const {
    if (survival != o.survival) return survival < o.survival;
    return std::tie(depth, request, node) > std::tie(o.depth, o.request, o.node);
  }
};

// Every node up to depth, breadth-first across requests until the budget runs out.
void admit_fixed(const ControllerInput& input, const std::vector<std::vector<int32_t>>& depth,
                 int32_t budget, ControllerOutput& out) {
  std::vector<std::tuple<int32_t, int32_t, int32_t>> order;  // (depth, request, node)
  for (size_t r = 0; r < depth.size(); ++r) {
    for (size_t i = 0; i < depth[r].size(); ++i) {
      const int32_t d = depth[r][i];
      if (d > 0 && d <= *input.fixed_depth) {
        order.emplace_back(d, static_cast<int32_t>(r), static_cast<int32_t>(i));
      }
    }
  }
  std::sort(order.begin(), order.end());
  const size_t n = std::min(order.size(), static_cast<size_t>(budget));
  for (size_t k = 0; k < n; ++k) {
    const auto [d, r, i] = order[k];
    out.admitted[static_cast<size_t>(r)].push_back(i);
  }
}

// Algorithm 1: the first candidate that does not raise tau * SPS(B) ends the search.
void admit_greedy(const ControllerInput& input, const std::vector<std::vector<int32_t>>& depth,
                  int32_t budget, const SpsTable& sps, ControllerOutput& out) {
  // children[r][i + 1]: nodes of request r whose parent is i (index 0: the anchor).
  std::vector<std::vector<std::vector<int32_t>>> children(depth.size());
  std::priority_queue<Candidate> frontier;
  for (size_t r = 0; r < depth.size(); ++r) {
    children[r].resize(depth[r].size() + 1);
    for (size_t i = 0; i < depth[r].size(); ++i) {
      if (depth[r][i] == 0) continue;
      const int32_t up = input.requests[r].parent[i];
      children[r][static_cast<size_t>(up + 1)].push_back(static_cast<int32_t>(i));
    }
  }
  auto offer = [&](size_t r, int32_t parent) {
    for (const int32_t i : children[r][static_cast<size_t>(parent + 1)]) {
      const double a = usable(input.requests[r].survival[static_cast<size_t>(i)]);
      if (a > 0.0) {
        frontier.push(Candidate{a, depth[r][static_cast<size_t>(i)], static_cast<int32_t>(r), i});
      }
    }
  };
  // A node becomes a candidate only once its parent is admitted.
  for (size_t r = 0; r < depth.size(); ++r) offer(r, -1);

  int32_t b = input.base_tokens;
  double tau = static_cast<double>(depth.size()) + std::max(0, input.other_commits);
  double best = tau * sps.sps(b);
  for (int32_t admitted = 0; admitted < budget && !frontier.empty(); ++admitted) {
    const Candidate c = frontier.top();
    frontier.pop();
    const double theta = (tau + c.survival) * sps.sps(b + 1);
    if (!(theta > best)) break;  // early stop: required for losslessness
    best = theta;
    tau += c.survival;
    b += 1;
    out.admitted[static_cast<size_t>(c.request)].push_back(c.node);
    offer(static_cast<size_t>(c.request), c.node);
  }
}

}  // namespace

ControllerOutput admit(const ControllerInput& input, const SpsTable& sps) {
  ControllerOutput out;
  const size_t n_requests = input.requests.size();
  out.admitted.resize(n_requests);
  std::vector<std::vector<int32_t>> depth(n_requests);
  for (size_t r = 0; r < n_requests; ++r) depth[r] = depths(input.requests[r]);
  const int32_t budget = std::max(0, input.max_draft_tokens);
  if (input.fixed_depth) {
    admit_fixed(input, depth, budget, out);
  } else {
    admit_greedy(input, depth, budget, sps, out);
  }
  double tau = static_cast<double>(n_requests);
  int32_t b = input.base_tokens;
  for (size_t r = 0; r < n_requests; ++r) {
    std::sort(out.admitted[r].begin(), out.admitted[r].end());
    for (const int32_t i : out.admitted[r]) {
      tau += usable(input.requests[r].survival[static_cast<size_t>(i)]);
      b += 1;
    }
  }
  out.expected_tokens = tau;
  out.predicted_throughput = tau * sps.sps(b);
  return out;
}

}  // namespace dspark::spec
