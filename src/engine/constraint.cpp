// A request's grammar matcher in the engine step: masks at the committed output or at a draft
// node, commits, and the cut of forbidden drafts.
#include "constraint.h"

#include <algorithm>
#include <limits>
#include <string>

namespace dspark::engine {

Result<std::unique_ptr<Constraint>> Constraint::create(const CompiledGrammar& grammar,
                                                       int64_t vocab) {
  if (grammar.vocab()->size() != vocab) {
    return Error{"request: the grammar was compiled for a vocabulary of " +
                 std::to_string(grammar.vocab()->size()) + " tokens, the model has " +
                 std::to_string(vocab)};
  }
  auto matcher = grammar.make_matcher();
  if (!matcher.ok()) return Error{"request: " + matcher.error().message};
  return std::unique_ptr<Constraint>(new Constraint(std::move(matcher).value(), vocab));
}

Constraint::Constraint(std::unique_ptr<GrammarMatcher> matcher, int64_t vocab)
    : matcher_(std::move(matcher)), vocab_(vocab) {
  mask_.resize(size_t(matcher_->vocab().mask_words()));
}

size_t Constraint::advance(std::span<const int32_t> path) {
  size_t n = 0;
  while (n < path.size() && matcher_->accept(path[n])) ++n;
  return n;
}

void Constraint::undo(size_t n) {
  // Rolling back what was just accepted cannot fail (n <= accepted()).
  if (n > 0) (void)matcher_->rollback(static_cast<int>(n));
}

bool Constraint::allows(std::span<const int32_t> path) {
  const size_t n = advance(path);
  undo(n);
  return n == path.size();
}

const float* Constraint::masked(const float* logits, std::span<const int32_t> path,
                                std::vector<float>& buffer) {
  buffer.assign(logits, logits + vocab_);
  const size_t n = advance(path);
  if (n == path.size() && matcher_->fill_mask(mask_).ok()) {
    grammar_apply_mask(mask_, buffer);
  } else {
    std::fill(buffer.begin(), buffer.end(), -std::numeric_limits<float>::infinity());
  }
  undo(n);
  return buffer.data();
}

bool Constraint::accept(int32_t token) {
  return matcher_->accept(token);
}

void cut_forbidden_drafts(Constraint& constraint, bool greedy, spec::DraftTree& tree) {
  // Parents precede children (DraftTree::check), so one pass in node order sees every parent's
  // verdict first.
  enum : char { kKept, kDead, kCut };  // kDead: kept for the walk, its subtree cut
  std::vector<char> state(size_t(tree.size()), kKept);
  std::vector<int32_t> keep, path;
  bool changed = false;
  for (int32_t k = 0; k < tree.size(); ++k) {
    const int32_t up = tree.parent[size_t(k)];
    if (up >= 0 && state[size_t(up)] != kKept) {
      state[size_t(k)] = kCut;
      changed = true;
      continue;
    }
    path.clear();
    for (int32_t n = k; n >= 0; n = tree.parent[size_t(n)]) path.push_back(tree.tokens[size_t(n)]);
    std::reverse(path.begin(), path.end());
    if (!constraint.allows(path)) {
      state[size_t(k)] = greedy || tree.q_index[size_t(k)] < 0 ? kCut : kDead;
      changed = changed || state[size_t(k)] == kCut;
    }
    if (state[size_t(k)] != kCut) keep.push_back(k);
  }
  if (changed) tree = tree.subset(keep);
}

}  // namespace dspark::engine
