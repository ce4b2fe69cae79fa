// Lossless acceptance of a draft tree: greedy path following and multi-candidate recursive
// rejection sampling (SpecInfer), with sibling groups drawn without replacement.
#include <algorithm>
#include <cmath>
#include <vector>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

// Below this residual mass the subtraction only left rounding noise (p and q_i agree), so the
// current p is kept instead.
constexpr double kMinResidual = 1e-12;

// Valid children of every node; index 0 is the anchor, node i is at i + 1. Nodes with a parent
// that does not precede them are left out (a checked tree has none).
std::vector<std::vector<int32_t>> children_of(const DraftTree& tree) {
  std::vector<std::vector<int32_t>> kids(static_cast<size_t>(tree.size()) + 1);
  const int32_t n = static_cast<int32_t>(std::min(tree.parent.size(), tree.tokens.size()));
  for (int32_t i = 0; i < n; ++i) {
    const int32_t up = tree.parent[static_cast<size_t>(i)];
    if (up >= -1 && up < i) kids[static_cast<size_t>(up + 1)].push_back(i);
  }
  return kids;
}

int32_t argmax(const std::vector<float>& p) {
  if (p.empty()) return -1;
  return static_cast<int32_t>(std::max_element(p.begin(), p.end()) - p.begin());
}

// The target distribution as unnormalized weights [vocab] with their total, so a rejection
// touches only the ids of q_i.
struct Residual {
  std::vector<double> w;  // [vocab]
  double mass = 0.0;

  explicit Residual(const std::vector<float>& p) : w(p.begin(), p.end()) {
    for (double& v : w) {
      if (!(v > 0.0)) v = 0.0;  // negatives and NaN carry no mass
      mass += v;
    }
  }
  double prob(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= w.size() || mass <= 0.0) return 0.0;
    return w[static_cast<size_t>(id)] / mass;
  }
  // p <- normalize(max(0, p - q)) for q given as (ids, probs) with total q_mass; the subtraction
  // is rolled back when the residual mass would vanish.
  void subtract(const std::vector<int32_t>& ids, const std::vector<double>& probs, double q_mass) {
    std::vector<std::pair<size_t, double>> old;  // [touched] (id, weight before)
    double removed = 0.0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t id = ids[i];
      if (id < 0 || static_cast<size_t>(id) >= w.size() || probs[i] <= 0.0) continue;
      double& v = w[static_cast<size_t>(id)];
      const double next = std::max(0.0, v - probs[i] / q_mass * mass);
      old.emplace_back(static_cast<size_t>(id), v);
      removed += v - next;
      v = next;
    }
    if (mass - removed <= kMinResidual * mass) {
      for (const auto& [id, v] : old) w[id] = v;
      return;
    }
    mass -= removed;
  }
  // Draws an id; the running total is recomputed here so rounding in mass cannot bias it.
  int32_t sample(double u) const {
    double total = 0.0;
    for (const double v : w) total += v;
    const double target = u * total;
    double cum = 0.0;
    int32_t last_positive = -1;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i] <= 0.0) continue;
      cum += w[i];
      last_positive = static_cast<int32_t>(i);
      if (cum > target) return last_positive;
    }
    return last_positive < 0 ? 0 : last_positive;
  }
};

// What is left of one sibling group's q after its rejected tokens were removed.
struct GroupQ {
  int32_t q_index = -1;
  std::vector<int32_t> ids;   // [n]
  std::vector<double> probs;  // [n] unnormalized, rejected ids at 0
  double mass = 0.0;
};

GroupQ& group_for(std::vector<GroupQ>& groups, const DraftTree& tree, int32_t q_index) {
  for (GroupQ& g : groups) {
    if (g.q_index == q_index) return g;
  }
  GroupQ g;
  g.q_index = q_index;
  const SparseDist& dist = tree.q[static_cast<size_t>(q_index)];
  const size_t n = std::min(dist.ids.size(), dist.probs.size());
  g.ids.assign(dist.ids.begin(), dist.ids.begin() + static_cast<std::ptrdiff_t>(n));
  for (size_t i = 0; i < n; ++i) {
    const double p = dist.probs[i] > 0.0f ? dist.probs[i] : 0.0;
    g.probs.push_back(p);
    g.mass += p;
  }
  groups.push_back(std::move(g));
  return groups.back();
}

}  // namespace

Acceptance accept_greedy(const DraftTree& tree, const TargetToken& target) {
  const auto kids = children_of(tree);
  Acceptance out;
  int32_t node = -1;
  while (true) {
    const int32_t best = target(node);
    int32_t next = -1;
    for (const int32_t child : kids[static_cast<size_t>(node + 1)]) {
      if (tree.tokens[static_cast<size_t>(child)] == best) {
        next = child;
        break;
      }
    }
    if (next < 0) {
      out.bonus = best;
      return out;
    }
    out.path.push_back(next);
    node = next;
  }
}

namespace {

Acceptance accept_sampling(const DraftTree& tree, const TargetDist& target,
                           const std::function<double()>& uniform) {
  const auto kids = children_of(tree);
  Acceptance out;
  int32_t node = -1;
  while (true) {
    Residual p(target(node));
    std::vector<GroupQ> groups;
    int32_t next = -1;
    for (const int32_t child : kids[static_cast<size_t>(node + 1)]) {
      const auto at = static_cast<size_t>(child);
      const int32_t token = tree.tokens[at];
      const int32_t qi = at < tree.q_index.size() ? tree.q_index[at] : -1;
      if (qi < -1 || (qi >= 0 && static_cast<size_t>(qi) >= tree.q.size())) continue;
      if (qi == -1) {
        // A point mass: accept with probability p(x); on rejection x leaves p.
        if (uniform() < p.prob(token)) {
          next = child;
          break;
        }
        p.subtract({token}, {1.0}, 1.0);
        continue;
      }
      GroupQ& g = group_for(groups, tree, qi);
      const auto it = std::find(g.ids.begin(), g.ids.end(), token);
      if (it == g.ids.end() || g.mass <= 0.0) continue;  // could not have been drawn
      const auto slot = static_cast<size_t>(it - g.ids.begin());
      const double qx = g.probs[slot] / g.mass;
      if (!(qx > 0.0)) continue;
      if (uniform() * qx < p.prob(token)) {
        next = child;
        break;
      }
      p.subtract(g.ids, g.probs, g.mass);
      // Without replacement: the group's next draw comes from q without this token.
      g.mass -= g.probs[slot];
      g.probs[slot] = 0.0;
    }
    if (next < 0) {
      out.bonus = p.sample(uniform());
      return out;
    }
    out.path.push_back(next);
    node = next;
  }
}

}  // namespace

Acceptance accept(const DraftTree& tree, bool greedy, const TargetDist& target,
                  const std::function<double()>& uniform) {
  if (greedy) return accept_greedy(tree, [&target](int32_t node) { return argmax(target(node)); });
  return accept_sampling(tree, target, uniform);
}

}  // namespace dspark::spec
