// A request's grammar inside the engine (structured outputs): its matcher, advanced by the
// tokens the request committed, and the masks the step applies to the target's logits before
// sampling and before speculative acceptance, at the committed output or at a draft node (the
// output plus the path to the node, walked on the matcher and rolled back). Drafted tokens the
// grammar forbids are cut before verification (cut_forbidden_drafts). One request's Constraint
// is used by one thread at a time (requests run their acceptance in parallel, each on its own).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/spec.h"
#include "dspark/status.h"

namespace dspark::engine {

class Constraint {
 public:
  // A fresh matcher of the grammar at the start of the output; vocab: the model's logits width,
  // which the grammar's vocabulary must equal.
  static Result<std::unique_ptr<Constraint>> create(const CompiledGrammar& grammar, int64_t vocab);

  // Whether the grammar allows path (tokens after the committed output), in order.
  bool allows(std::span<const int32_t> path);
  // logits [vocab] with every token the grammar forbids after the committed output plus path
  // set to -inf, in buffer [vocab]; returns buffer.data(). An error only if path itself is not
  // allowed (the caller's bug): then every logit is -inf.
  const float* masked(const float* logits, std::span<const int32_t> path,
                      std::vector<float>& buffer);
  // Commits one token; false (and no change) if the grammar forbids it.
  bool accept(int32_t token);
  // The grammar has ended (an EOS id was accepted where it may end): nothing may follow.
  bool terminated() const { return matcher_->is_terminated(); }
  // The committed output is a complete match (EOS would be allowed).
  bool can_end() const { return matcher_->can_end(); }

 private:
  Constraint(std::unique_ptr<GrammarMatcher> matcher, int64_t vocab);
  // Walks path on the matcher: how many of its tokens were accepted (all: path.size()).
  size_t advance(std::span<const int32_t> path);
  void undo(size_t n);

  std::unique_ptr<GrammarMatcher> matcher_;
  int64_t vocab_ = 0;
  std::vector<uint32_t> mask_;  // [mask_words]
};

// Cuts the drafted nodes of tree whose token the grammar forbids after the committed output
// plus the path to the node, keeping verification exact:
// - a deterministic node (q_index -1) or any node of a greedy request is dropped with its
//   subtree: the masked target gives it probability 0, so verifying it would reject it and
//   leave the residual p - point mass = p, exactly what skipping it gives;
// - a node drawn from a distribution (q_index >= 0, sampled requests) stays, and only its
//   subtree goes: recursive rejection sampling must still reject it (p(x) = 0) and move to the
//   residual normalize(max(0, p - q)) and the group's next draw, or the siblings' odds change;
//   its children could only be reached through its acceptance, which has probability 0.
void cut_forbidden_drafts(Constraint& constraint, bool greedy, spec::DraftTree& tree);

}  // namespace dspark::engine
