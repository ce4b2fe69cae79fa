// Token sampling from logits: logits processors (bias, penalties, min_tokens), temperature,
// top-k, top-p, min-p, a seeded per-request generator, logprobs, and the stop/finish checks.
//
// Processing order, fixed and applied to the logits of one position (the steps of HF/vLLM):
//   1. logit_bias          logits[id] += bias (validate checks the ids)
//   2. repetition_penalty  for ids seen in prompt or output: logit > 0 ? logit / r : logit * r
//   3. presence/frequency  logits[id] -= presence * [count > 0] + frequency * count
//                          (count = occurrences of id in the generated output only)
//   4. min_tokens          while fewer than min_tokens were generated, stop_token_ids and the EOS
//                          ids (unless ignore_eos) get -inf
//   5. temperature         logits / T, softmax; T <= 1e-5 is greedy (one-hot on the first maximum)
//   6. top_k               keep the k most likely (ties broken by lower id)
//   7. top_p               keep the smallest most-likely prefix whose mass reaches top_p
//   8. min_p               drop ids whose probability is below min_p * the top probability
// Steps 1-4 give the "adjusted logits"; steps 5-8 give the "processed distribution" p, which is
// what the sampler draws from and what speculative acceptance compares drafts against.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dspark/finish.h"
#include "dspark/status.h"

namespace dspark {

struct SamplingParams {
  // The first five fields keep their order: callers brace-initialise them (the {} initialisers
  // below keep -Wmissing-field-initializers quiet for such partial lists).
  float temperature = 0.0f;  // [0, 2]; <= 1e-5: greedy (argmax)
  int32_t top_k = 0;         // 0 or -1: off
  float top_p = 1.0f;        // (0, 1]; 1: off
  float min_p = 0.0f;        // [0, 1]; 0: off
  uint64_t seed = 0;         // per-request generator seed

  float presence_penalty = 0.0f;                        // [-2, 2]
  float frequency_penalty = 0.0f;                       // [-2, 2]
  float repetition_penalty = 1.0f;                      // > 0; 1: off
  std::vector<std::pair<int32_t, float>> logit_bias{};  // (token id, bias in [-100, 100])

  int32_t max_tokens = 16;  // >= 1 (the OpenAI completions default)
  int32_t min_tokens = 0;   // [0, max_tokens]
  std::vector<int32_t> stop_token_ids{};
  std::vector<std::string> stop{};  // non-empty stop strings, never emitted
  bool ignore_eos = false;

  bool logprobs = false;     // report the chosen token's logprob
  int32_t top_logprobs = 0;  // [0, 20] most likely alternatives to report
};

// Checks every field against the ranges above; token ids must lie in [0, vocab).
Status validate(const SamplingParams& params, int64_t vocab);

// What the logits processors need to know about the request so far.
struct TokenHistory {
  std::span<const int32_t> prompt;   // [n_prompt]
  std::span<const int32_t> output;   // [n_generated]
  std::span<const int32_t> eos_ids;  // the model's end-of-sequence ids
};

// Steps 1-4 in place on logits [vocab]. Ids outside [0, vocab) in the history are ignored
// (validate rejects them in the params).
void apply_logits_processors(const SamplingParams& params, const TokenHistory& history,
                             float* logits /*[vocab]*/, int64_t vocab);

// Whether apply_logits_processors may change a logit for a request that has generated n_output
// tokens; where not, a greedy pick reads the raw row instead of a processed copy.
bool logits_processors_active(const SamplingParams& params, int64_t n_output);

// Whether the parameters make the processed distribution one-hot (temperature at or below 1e-5,
// or top_k 1).
bool is_greedy(const SamplingParams& params);
// The first id of the largest logit [vocab], NaN counting as -inf; -1 when every logit is -inf
// or NaN. The token greedy parameters pick.
int64_t greedy_token(const float* logits /*[vocab]*/, int64_t vocab);

// Steps 5-8: probs [vocab] sums to 1, filtered ids are exactly 0. NaN logits count as -inf; if
// every logit is -inf the distribution is uniform (there is nothing better to say).
void processed_distribution(const SamplingParams& params, const float* logits /*[vocab]*/,
                            int64_t vocab, std::vector<float>* probs /*[vocab]*/);

// One token's log-probabilities. The engine passes the raw model logits (vLLM's default and what
// OpenAI reports: the model's own distribution, before temperature, penalties and filters);
// passing the adjusted logits instead reports the penalised distribution.
struct TokenLogprobs {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // [k] (id, logprob), most likely first, ties by id
};
TokenLogprobs compute_logprobs(const float* logits /*[vocab]*/, int64_t vocab, int32_t token,
                               int32_t k);

// Per-request sampler: its generator is seeded from params.seed, so a seeded request draws the
// same tokens whatever else the server runs.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from raw logits [vocab]: steps 1-8 with an empty history.
  int32_t sample(const float* logits /*[vocab]*/, int64_t vocab);
  // Full pipeline: copies logits, applies steps 1-8 with the history and draws.
  int32_t sample(const float* logits /*[vocab]*/, int64_t vocab, const TokenHistory& history);
  // Draws from an already processed distribution probs [vocab] (for speculative resampling).
  int32_t sample_from(const std::vector<float>& probs /*[vocab]*/);
  // The next number of the request's generator, in [0, 1) (speculative acceptance draws its
  // uniforms here, so a seeded request stays reproducible).
  double uniform() { return next_uniform(); }
  // The distribution the last sample() call drew from: probs [vocab]; empty after a greedy
  // one, which takes the argmax without building it.
  const std::vector<float>& last_distribution() const { return probs_; }
  const SamplingParams& params() const { return params_; }

 private:
  double next_uniform();  // [0, 1), 53 random bits: identical on every platform

  SamplingParams params_;
  uint64_t state_;               // splitmix64 state
  std::vector<float> adjusted_;  // [vocab] scratch: logits after steps 1-4
  std::vector<float> probs_;     // [vocab] the processed distribution
};

// Finds stop strings in detokenized text fed piece by piece, even when one spans pieces. It emits
// only text that cannot belong to a stop string, holds back a tail that could start one (or an
// incomplete UTF-8 sequence), and never emits the stop string or anything after it.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);
  // Appends piece; returns the text safe to emit now. After a match, returns the text before it
  // and ignores any later input.
  std::string feed(std::string_view piece);
  // Releases the held tail (generation ended for another reason).
  std::string flush();
  bool stopped() const { return matched_.has_value(); }
  // Index into stops of the string that matched: the one that completes first in the text; on a
  // tie the one starting earliest, then the first listed.
  std::optional<size_t> matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::optional<size_t> matched_;
};

// Decides when a request ends: a stop token id (or EOS unless ignore_eos), a stop string, or
// max_tokens generated. Stop ids are honoured only once min_tokens tokens were generated.
class FinishChecker {
 public:
  FinishChecker(const SamplingParams& params, std::vector<int32_t> eos_ids);
  struct Step {
    std::string text;  // text to stream now (stop strings and stop tokens' text excluded)
    std::optional<FinishReason> finish;
  };
  // Takes one generated token and its detokenized text piece.
  Step on_token(int32_t token, std::string_view piece);
  int32_t generated() const { return generated_; }
  bool finished() const { return finished_; }

 private:
  bool is_stop_id(int32_t token) const;

  SamplingParams params_;
  std::vector<int32_t> eos_ids_;
  StopStringMatcher matcher_;
  int32_t generated_ = 0;
  bool finished_ = false;
};

}  // namespace dspark
