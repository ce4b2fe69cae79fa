// Token sampling from logits: temperature, top-k, top-p, min-p with a seeded generator.
// (The engine issue extends this with penalties, logit bias and logprobs.)
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace dspark {

struct SamplingParams {
  float temperature = 0.0f;  // <= 1e-5: greedy (argmax)
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from logits [vocab]. Greedy picks the first maximum.
  int32_t sample(const float* logits /*[vocab]*/, int64_t vocab);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> candidates_;  // [vocab] scratch: ids surviving the filters
  std::vector<float> probs_;         // [vocab] scratch: their probabilities
};

}  // namespace dspark
