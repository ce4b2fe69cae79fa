// Candidate trees of the draft-model drafter: a node's children from the draft's logits
// (deterministic top-k, or drawn without replacement from the processed distribution), ranking
// by path probability, and the final choice under the node budget.
#pragma once

#include <cstdint>
#include <vector>

#include "dspark/sample.h"
#include "dspark/spec.h"

namespace dspark::spec::draft_detail {

struct Candidate {
  int32_t token = 0;
  int32_t parent = -1;  // candidate index; -1: a child of the anchor
  int32_t depth = 1;
  float confidence = 0.0f;  // draft probability (greedy) or q(token) (sampling)
  int32_t q_index = -1;     // into the tree's q; -1: a deterministic proposal
  // Path probability (product of confidences) lowered where needed so that it never rises from
  // a parent to a child or from a sibling to the next one: every top set by (score, creation
  // order) is then closed under parents and earlier siblings, and a sampled sibling group stays
  // a prefix of its draw order (what acceptance without replacement assumes).
  double score = 0.0;
  int32_t slot = -1;  // draft KV slot once the node has been run through the draft model
};

// Splitmix64 stream; uniform() gives doubles in [0, 1) from 53 bits.
class DraftRng {
 public:
  explicit DraftRng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();

 private:
  uint64_t state_;
};

// Seed of one request's drafting at one sequence length: the same request, seed and length
// always draft the same tree, however the calls were batched.
uint64_t draft_seed(uint64_t request_seed, int64_t request_id, int64_t n_tokens);

class CandidateTree {
 public:
  // params: the request's sampling parameters, nullptr or temperature <= 1e-5 for greedy.
  CandidateTree(int32_t max_nodes, int32_t top_k, const SamplingParams* params, uint64_t seed);

  bool greedy() const { return params_ == nullptr; }
  int32_t size() const { return static_cast<int32_t>(nodes_.size()); }
  Candidate& node(int32_t i) { return nodes_[static_cast<size_t>(i)]; }
  const Candidate& node(int32_t i) const { return nodes_[static_cast<size_t>(i)]; }

  // Adds up to top_k children of parent (-1: the anchor) from the draft's logits after it.
  void expand(int32_t parent, const float* logits /*[vocab]*/, int64_t vocab);
  // Candidates at depth that rank within the node budget, best first: only they (and their
  // descendants) can make the final tree, since later candidates never rank above them.
  std::vector<int32_t> frontier(int32_t depth) const;
  // KV slots of node's ancestors, the anchor's child first (each ran in an earlier level).
  std::vector<int32_t> ancestor_slots(int32_t node) const;
  // The best max_nodes candidates in creation order (parents first, siblings in draw order).
  DraftTree finish() const;

 private:
  std::vector<int32_t> ranked() const;  // candidate indices by score, then creation order
  void add_child(int32_t parent, int32_t token, float confidence, int32_t q_index);
  void expand_greedy(int32_t parent, const float* logits, int64_t vocab);
  void expand_sampled(int32_t parent, const float* logits, int64_t vocab);

  int32_t max_nodes_, top_k_;
  const SamplingParams* params_;  // nullptr: greedy
  DraftRng rng_;
  std::vector<Candidate> nodes_;
  std::vector<SparseDist> q_;
  std::vector<float> probs_;    // [vocab] scratch: processed distribution
  std::vector<int32_t> order_;  // [vocab] scratch: ids being ranked
};

}  // namespace dspark::spec::draft_detail
