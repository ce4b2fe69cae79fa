// Steps 1-4 of the processing order in sample.h: logit bias, repetition, presence and frequency
// penalties, and min_tokens blocking.
#include <algorithm>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "dspark/sample.h"

namespace dspark {

namespace {

bool in_vocab(int32_t id, int64_t vocab) {
  return id >= 0 && int64_t(id) < vocab;
}

}  // namespace

void apply_logits_processors(const SamplingParams& params, const TokenHistory& history,
                             float* logits, int64_t vocab) {
  for (const auto& [id, bias] : params.logit_bias) {
    if (in_vocab(id, vocab)) logits[id] += bias;
  }

  if (params.repetition_penalty != 1.0f) {
    // Each seen id is penalised once, however often it occurs (the HF definition).
    std::unordered_set<int32_t> seen(history.prompt.begin(), history.prompt.end());
    seen.insert(history.output.begin(), history.output.end());
    const float r = params.repetition_penalty;
    for (int32_t id : seen) {
      if (!in_vocab(id, vocab)) continue;
      logits[id] = logits[id] > 0.0f ? logits[id] / r : logits[id] * r;
    }
  }

  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    std::unordered_map<int32_t, int32_t> counts;
    for (int32_t id : history.output) ++counts[id];
    for (const auto& [id, count] : counts) {
      if (!in_vocab(id, vocab)) continue;
      logits[id] -= params.presence_penalty + params.frequency_penalty * float(count);
    }
  }

  if (int64_t(history.output.size()) < int64_t(params.min_tokens)) {
    constexpr float kBlocked = -std::numeric_limits<float>::infinity();
    for (int32_t id : params.stop_token_ids) {
      if (in_vocab(id, vocab)) logits[id] = kBlocked;
    }
    if (!params.ignore_eos) {
      for (int32_t id : history.eos_ids) {
        if (in_vocab(id, vocab)) logits[id] = kBlocked;
      }
    }
  }
}

bool logits_processors_active(const SamplingParams& params, int64_t n_output) {
  return !params.logit_bias.empty() || params.repetition_penalty != 1.0f ||
         params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f ||
         n_output < int64_t(params.min_tokens);
}

}  // namespace dspark
