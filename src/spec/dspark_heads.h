// The DSpark heads after the block pass (dspark-spec.md sections 4-5): the vanilla Markov head
// corrects each position's logits with a rank-r bigram term of the previous (drafted) token,
// drafts left to right, and the confidence head scores each position from [h ; W1[prev]]
// (its logit divided by the checkpoint's T_k when it has confidence_temperatures).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "dspark/backend.h"
#include "dspark/spec.h"
#include "dspark_checkpoint.h"

namespace dspark::spec::dspark_detail {

// Sampling drafts come from the top kTopQ tokens of softmax(L / T), renormalised: q is then that
// truncated distribution, which keeps acceptance exact.
constexpr int32_t kTopQ = 64;

struct HeadScratch {
  std::vector<float> w1_row;   // [r] W1[prev]
  std::vector<float> logits;   // [V'] L_k = U_k + bias_k over the draft vocabulary
  std::vector<int32_t> order;  // [V'] columns ranked when sampling
};

// Drafts n_nodes tokens after anchor as a chain appended to tree (empty on entry). h: the
// request's first n_nodes block rows after the final norm; U: their base logits over the draft
// vocabulary's V' columns (ck.draft_token maps a column to its id). Greedy
// (temperature <= 1e-5): argmax, q_index -1; else a draw from the truncated softmax(L / T),
// recorded in tree.q. The draw feeds the next position's Markov term.
void draft_chain(const Checkpoint& ck, const float* h /*[n_nodes, d_model]*/,
                 const float* U /*[n_nodes, V']*/, int32_t n_nodes, int32_t anchor,
                 float temperature, std::mt19937_64& rng, HeadScratch& s, Backend& backend,
                 DraftTree& tree);

}  // namespace dspark::spec::dspark_detail
