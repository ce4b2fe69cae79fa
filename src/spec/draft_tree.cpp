// DraftTree bookkeeping: building, depth, validation and prefix-closed subsets.
#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

Error tree_error(int32_t node, const std::string& what) {
  return Error{"draft tree node " + std::to_string(node) + ": " + what};
}

// A q distribution must be a proper distribution over distinct in-vocab ids.
Status check_dist(const SparseDist& dist, size_t index, int64_t vocab) {
  const std::string name = "draft tree q[" + std::to_string(index) + "]: ";
  if (dist.ids.size() != dist.probs.size()) {
    return Error{name + std::to_string(dist.ids.size()) + " ids but " +
                 std::to_string(dist.probs.size()) + " probs"};
  }
  std::unordered_set<int32_t> seen;
  double total = 0.0;
  for (size_t i = 0; i < dist.ids.size(); ++i) {
    const int32_t id = dist.ids[i];
    if (id < 0 || id >= vocab) {
      return Error{name + "id " + std::to_string(id) + " outside [0, " + std::to_string(vocab) +
                   ")"};
    }
    if (!seen.insert(id).second) return Error{name + "id " + std::to_string(id) + " repeated"};
    const float p = dist.probs[i];
    if (!std::isfinite(p) || p < 0.0f) {
      return Error{name + "probability of id " + std::to_string(id) + " is " + std::to_string(p)};
    }
    total += p;
  }
  // Drafters compute q in float; a loose tolerance still catches unnormalized input.
  if (std::abs(total - 1.0) > 1e-3) {
    return Error{name + "probabilities sum to " + std::to_string(total) + ", not 1"};
  }
  return Status::Ok();
}

}  // namespace

void DraftTree::clear() {
  tokens.clear();
  parent.clear();
  confidence.clear();
  q_index.clear();
  q.clear();
}

int32_t DraftTree::add(int32_t token, int32_t parent_node, float node_confidence,
                       int32_t node_q_index) {
  tokens.push_back(token);
  parent.push_back(parent_node);
  confidence.push_back(node_confidence);
  q_index.push_back(node_q_index);
  return size() - 1;
}

int32_t DraftTree::depth(int32_t node) const {
  if (node < 0 || node >= size() || static_cast<size_t>(node) >= parent.size()) return 0;
  int32_t d = 0;
  // Parents precede children in a valid tree; stopping on a forward or out-of-range link keeps a
  // malformed tree from looping.
  for (int32_t at = node; at >= 0; ++d) {
    const int32_t up = parent[static_cast<size_t>(at)];
    if (up >= at) return d + 1;
    at = up;
  }
  return d;
}

Status DraftTree::check(int64_t vocab) const {
  const size_t n = tokens.size();
  if (parent.size() != n || confidence.size() != n || q_index.size() != n) {
    return Error{"draft tree shapes disagree: " + std::to_string(n) + " tokens, " +
                 std::to_string(parent.size()) + " parents, " + std::to_string(confidence.size()) +
                 " confidences, " + std::to_string(q_index.size()) + " q indices"};
  }
  for (size_t i = 0; i < q.size(); ++i) DSPARK_RETURN_IF_ERROR(check_dist(q[i], i, vocab));
  // (parent, token) pairs seen so far: sibling tokens must be distinct.
  std::unordered_set<uint64_t> siblings;
  for (int32_t i = 0; i < size(); ++i) {
    const auto at = static_cast<size_t>(i);
    const int32_t up = parent[at];
    if (up < -1 || up >= i) {
      return tree_error(i, "parent " + std::to_string(up) + " does not precede it");
    }
    const int32_t token = tokens[at];
    if (token < 0 || token >= vocab) {
      return tree_error(
          i, "token " + std::to_string(token) + " outside [0, " + std::to_string(vocab) + ")");
    }
    const float c = confidence[at];
    if (!(c >= 0.0f && c <= 1.0f)) {
      return tree_error(i, "confidence " + std::to_string(c) + " outside [0, 1]");
    }
    const uint64_t key =
        (static_cast<uint64_t>(static_cast<uint32_t>(up + 1)) << 32) | static_cast<uint32_t>(token);
    if (!siblings.insert(key).second) {
      return tree_error(i, "token " + std::to_string(token) + " repeats a sibling");
    }
    const int32_t qi = q_index[at];
    if (qi == -1) continue;
    if (qi < 0 || static_cast<size_t>(qi) >= q.size()) {
      return tree_error(
          i, "q index " + std::to_string(qi) + " outside [-1, " + std::to_string(q.size()) + ")");
    }
    const SparseDist& dist = q[static_cast<size_t>(qi)];
    const auto it = std::find(dist.ids.begin(), dist.ids.end(), token);
    if (it == dist.ids.end() || dist.probs[static_cast<size_t>(it - dist.ids.begin())] <= 0.0f) {
      return tree_error(i, "token " + std::to_string(token) + " has no probability in q[" +
                               std::to_string(qi) + "]");
    }
  }
  return Status::Ok();
}

DraftTree DraftTree::subset(std::span<const int32_t> keep) const {
  DraftTree out;
  const size_t n = std::min({tokens.size(), parent.size(), confidence.size(), q_index.size()});
  std::vector<int32_t> new_index(n, -1);       // [n_nodes] position in out, -1: dropped
  std::unordered_map<int32_t, int32_t> new_q;  // old q index -> new q index
  int32_t last = -1;
  for (const int32_t node : keep) {
    // Out-of-range, repeated or unsorted entries and nodes whose parent is missing are skipped,
    // so the result is always a valid prefix-closed tree.
    if (node <= last || static_cast<size_t>(node) >= n) continue;
    last = node;
    const auto at = static_cast<size_t>(node);
    const int32_t up = parent[at];
    if (up >= node || (up >= 0 && new_index[static_cast<size_t>(up)] < 0) || up < -1) continue;
    int32_t qi = q_index[at];
    if (qi >= 0 && static_cast<size_t>(qi) < q.size()) {
      const auto [it, fresh] = new_q.emplace(qi, static_cast<int32_t>(out.q.size()));
      if (fresh) out.q.push_back(q[static_cast<size_t>(qi)]);
      qi = it->second;
    }
    new_index[at] =
        out.add(tokens[at], up < 0 ? -1 : new_index[static_cast<size_t>(up)], confidence[at], qi);
  }
  return out;
}

}  // namespace dspark::spec
