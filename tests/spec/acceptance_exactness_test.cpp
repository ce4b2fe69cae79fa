// Speculative sampling is exact: over many seeded runs, with trees re-drafted from q each run, the
// first two output tokens are distributed as p(x1) * p(x2 | x1) (chi-square and total
// variation), for chains, sampled trees, deterministic proposals and mixtures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "chi_square.h"
#include "dspark/spec.h"

namespace dspark::spec {
namespace {

constexpr int32_t kVocab = 7;
constexpr int kRuns = 200000;
// Significance: a correct sampler fails with probability 1e-4 per scheme (runs are seeded, so
// the outcome is reproducible).
constexpr double kMinPValue = 1e-4;
// Expected total variation at 200k samples over <= 49 cells is ~0.005.
constexpr double kMaxTotalVariation = 0.012;

using History = std::vector<int32_t>;
using Rng = std::mt19937_64;

uint64_t seed_of(const History& h, uint64_t salt) {
  uint64_t s = salt;
  for (const int32_t t : h) s = s * 1000003u + static_cast<uint64_t>(t) + 1;
  return s;
}

// The target's distribution p(. | h) (top-p filtered, so with zeros) and the drafter's q(. | h)
// (a random support that usually covers ids p excludes), fixed per history.
class World {
 public:
  const std::vector<float>& p(const History& h) {
    auto [it, fresh] = p_.try_emplace(h);
    if (!fresh) return it->second;
    Rng rng(seed_of(h, 17));
    std::vector<double> w = random_weights(rng, 1.0);
    std::vector<int32_t> order(kVocab);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return w[a] > w[b]; });
    // top_p = 0.9 over the normalized weights.
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    double kept = 0.0;
    std::vector<float>& out = it->second;
    out.assign(kVocab, 0.0f);
    for (const int32_t id : order) {
      if (kept >= 0.9 * total) break;
      kept += w[static_cast<size_t>(id)];
      out[static_cast<size_t>(id)] = static_cast<float>(w[static_cast<size_t>(id)]);
    }
    normalize(out);
    return out;
  }

  const std::vector<float>& q(const History& h) {
    auto [it, fresh] = q_.try_emplace(h);
    if (!fresh) return it->second;
    Rng rng(seed_of(h, 91));
    const std::vector<double> w = random_weights(rng, 0.75);
    it->second.assign(w.begin(), w.end());
    normalize(it->second);
    return it->second;
  }

 private:
  // Exponential weights (a Dirichlet(1) draw once normalized); each id survives with
  // probability keep, at least one always does.
  static std::vector<double> random_weights(Rng& rng, double keep) {
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    std::vector<double> w(kVocab);
    bool any = false;
    for (double& v : w) {
      v = -std::log(1.0 - u01(rng));
      if (u01(rng) >= keep) v = 0.0;
      any = any || v > 0.0;
    }
    if (!any) w[0] = 1.0;
    return w;
  }
  static void normalize(std::vector<float>& v) {
    double total = 0.0;
    for (const float x : v) total += x;
    for (float& x : v) x = static_cast<float>(x / total);
  }

  std::map<History, std::vector<float>> p_;
  std::map<History, std::vector<float>> q_;
};

SparseDist sparse(const std::vector<float>& dense) {
  SparseDist d;
  for (int32_t i = 0; i < kVocab; ++i) {
    if (dense[static_cast<size_t>(i)] > 0.0f) {
      d.ids.push_back(i);
      d.probs.push_back(dense[static_cast<size_t>(i)]);
    }
  }
  return d;
}

// Draws up to k distinct ids from dist without replacement (in draw order).
std::vector<int32_t> draw(const SparseDist& dist, int32_t k, Rng& rng) {
  std::vector<double> w(dist.probs.begin(), dist.probs.end());
  std::vector<int32_t> out;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int32_t n = 0; n < k; ++n) {
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    if (total <= 0.0) break;
    const double target = u01(rng) * total;
    double cum = 0.0;
    size_t pick = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i] <= 0.0) continue;
      pick = i;
      cum += w[i];
      if (cum > target) break;
    }
    out.push_back(dist.ids[pick]);
    w[pick] = 0.0;
  }
  return out;
}

// Adds k children of parent drawn without replacement from dist, sharing one q entry.
std::vector<int32_t> add_group(DraftTree& t, int32_t parent, const SparseDist& dist, int32_t k,
                               Rng& rng) {
  const auto qi = static_cast<int32_t>(t.q.size());
  t.q.push_back(dist);
  std::vector<int32_t> nodes;
  for (const int32_t token : draw(dist, k, rng)) nodes.push_back(t.add(token, parent, 0.5f, qi));
  return nodes;
}

History extend(History h, int32_t token) {
  h.push_back(token);
  return h;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

using Scheme = std::function<DraftTree(World&, const History&, Rng&)>;

// (i) a chain of three tokens, each sampled from q given the ones before.
DraftTree chain(World& w, const History& h, Rng& rng) {
  DraftTree t;
  History at = h;
  int32_t parent = -1;
  for (int d = 0; d < 3; ++d) {
    parent = add_group(t, parent, sparse(w.q(at)), 1, rng)[0];
    at = extend(at, t.tokens[static_cast<size_t>(parent)]);
  }
  return t;
}

// (ii) three children drawn without replacement, two grandchildren each, one great-grandchild.
DraftTree sampled_tree(World& w, const History& h, Rng& rng) {
  DraftTree t;
  const auto roots = add_group(t, -1, sparse(w.q(h)), 3, rng);
  for (size_t r = 0; r < roots.size(); ++r) {
    const History hr = extend(h, t.tokens[static_cast<size_t>(roots[r])]);
    const auto kids = add_group(t, roots[r], sparse(w.q(hr)), 2, rng);
    if (r == 0 && !kids.empty()) {
      add_group(t, kids[0], sparse(w.q(extend(hr, t.tokens[static_cast<size_t>(kids[0])]))), 1,
                rng);
    }
  }
  return t;
}

// (iii) deterministic proposals: q's argmax chain plus a second fixed guess at the root.
DraftTree deterministic(World& w, const History& h, Rng&) {
  DraftTree t;
  const int32_t a = argmax(w.q(h));
  const int32_t b = (a + 1 + static_cast<int32_t>(h.size())) % kVocab;
  int32_t node = t.add(a, -1, 0.5f);
  t.add(b, -1, 0.5f);
  History at = extend(h, a);
  for (int d = 0; d < 2; ++d) {
    const int32_t x = argmax(w.q(at));
    node = t.add(x, node, 0.5f);
    at = extend(at, x);
  }
  return t;
}

// (iv) a deterministic guess first, then two draws from q without that guess; under the guess,
// sampled children followed by a deterministic one (the first id no sibling took).
DraftTree mixed(World& w, const History& h, Rng& rng) {
  DraftTree t;
  int32_t sum = 0;
  for (const int32_t x : h) sum += x;
  const int32_t d = (sum + 2) % kVocab;
  const int32_t guess = t.add(d, -1, 0.5f);
  std::vector<float> rest = w.q(h);
  rest[static_cast<size_t>(d)] = 0.0f;
  const double mass = std::accumulate(rest.begin(), rest.end(), 0.0);
  if (mass > 0.0) {
    for (float& x : rest) x = static_cast<float>(x / mass);
    const auto drawn = add_group(t, -1, sparse(rest), 2, rng);
    const History h0 = extend(h, t.tokens[static_cast<size_t>(drawn[0])]);
    add_group(t, drawn[0], sparse(w.q(h0)), 1, rng);
  }
  const History hg = extend(h, d);
  const auto kids = add_group(t, guess, sparse(w.q(hg)), 2, rng);
  int32_t free_id = 0;
  auto taken = [&](int32_t id) {
    return std::any_of(kids.begin(), kids.end(),
                       [&](int32_t k) { return t.tokens[static_cast<size_t>(k)] == id; });
  };
  while (taken(free_id)) ++free_id;
  t.add(free_id, guess, 0.5f);
  return t;
}

History path_history(const DraftTree& t, const History& h, int32_t node) {
  std::vector<int32_t> rev;
  for (int32_t at = node; at >= 0; at = t.parent[static_cast<size_t>(at)]) {
    rev.push_back(t.tokens[static_cast<size_t>(at)]);
  }
  History out = h;
  out.insert(out.end(), rev.rbegin(), rev.rend());
  return out;
}

// Counts of (x1, x2) over kRuns runs, each speculating round after round until two tokens exist.
std::vector<int64_t> run_speculation(World& world, const Scheme& scheme, uint64_t seed) {
  Rng rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const std::function<double()> uniform = [&] { return u01(rng); };
  std::vector<int64_t> counts(kVocab * kVocab, 0);
  for (int run = 0; run < kRuns; ++run) {
    History out;
    while (out.size() < 2) {
      const DraftTree tree = scheme(world, out, rng);
      if (run < 200) {
        const Status s = tree.check(kVocab);
        EXPECT_TRUE(s.ok()) << s.message();
      }
      const TargetDist target = [&](int32_t node) -> const std::vector<float>& {
        return world.p(path_history(tree, out, node));
      };
      const Acceptance a = accept(tree, false, target, uniform);
      for (const int32_t node : a.path) out.push_back(tree.tokens[static_cast<size_t>(node)]);
      out.push_back(a.bonus);
    }
    counts[static_cast<size_t>(out[0] * kVocab + out[1])] += 1;
  }
  return counts;
}

std::vector<double> target_pairs(World& world) {
  std::vector<double> expected(kVocab * kVocab, 0.0);
  for (int32_t a = 0; a < kVocab; ++a) {
    for (int32_t b = 0; b < kVocab; ++b) {
      expected[static_cast<size_t>(a * kVocab + b)] =
          static_cast<double>(world.p({})[static_cast<size_t>(a)]) * world.p({a})[b];
    }
  }
  return expected;
}

void expect_exact(const Scheme& scheme, uint64_t seed, const char* name) {
  World world;
  const auto result = testing::fit(run_speculation(world, scheme, seed), target_pairs(world));
  std::printf("[%s] %s\n", name, result.describe().c_str());
  EXPECT_EQ(result.impossible, 0) << result.describe();
  EXPECT_GT(result.p_value, kMinPValue) << result.describe();
  EXPECT_LT(result.total_variation, kMaxTotalVariation) << result.describe();
}

TEST(AcceptanceExactness, ChiSquareHelperMatchesClosedForms) {
  // df = 2: P(X >= x) = exp(-x / 2); df = 1 at 3.841: 0.05.
  EXPECT_NEAR(testing::chi_square_p_value(3.0, 2), std::exp(-1.5), 1e-12);
  EXPECT_NEAR(testing::chi_square_p_value(20.0, 2), std::exp(-10.0), 1e-14);
  EXPECT_NEAR(testing::chi_square_p_value(3.841459, 1), 0.05, 1e-6);
  EXPECT_NEAR(testing::chi_square_p_value(48.0, 48), 0.4734, 1e-3);
}

TEST(AcceptanceExactness, WorldHasZerosInPAndQMassOutsideP) {
  World world;
  const auto& p = world.p({});
  const auto& q = world.q({});
  bool p_zero_with_q_mass = false;
  for (int32_t i = 0; i < kVocab; ++i) p_zero_with_q_mass |= p[i] == 0.0f && q[i] > 0.0f;
  EXPECT_TRUE(p_zero_with_q_mass);
}

TEST(AcceptanceExactness, HarnessRejectsTheDraftDistribution) {
  // The draft's own two-token distribution differs from the target's; the test must see it.
  World world;
  Rng rng(5);
  std::vector<int64_t> counts(kVocab * kVocab, 0);
  for (int run = 0; run < kRuns / 10; ++run) {
    const DraftTree t = chain(world, {}, rng);
    counts[static_cast<size_t>(t.tokens[0] * kVocab + t.tokens[1])] += 1;
  }
  const auto result = testing::fit(counts, target_pairs(world));
  EXPECT_TRUE(result.impossible > 0 || result.p_value < 1e-10) << result.describe();
}

TEST(AcceptanceExactness, SampledChain) {
  expect_exact(chain, 101, "chain");
}
TEST(AcceptanceExactness, TreeWithoutReplacement) {
  expect_exact(sampled_tree, 202, "tree");
}
TEST(AcceptanceExactness, DeterministicProposals) {
  expect_exact(deterministic, 303, "deterministic");
}
TEST(AcceptanceExactness, MixedProposals) {
  expect_exact(mixed, 404, "mixed");
}

}  // namespace
}  // namespace dspark::spec
