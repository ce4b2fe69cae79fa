// The per-request sampler: runs the processing pipeline and draws with its own seeded generator.
#include "dspark/sample.h"

namespace dspark {

Sampler::Sampler(const SamplingParams& params) : params_(params), state_(params.seed) {}

double Sampler::next_uniform() {
  // splitmix64: tiny state, good statistics, and the same sequence on every standard library
  // (std::uniform_real_distribution is not specified bit for bit).
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  return sample(logits, vocab, TokenHistory{});
}

int32_t Sampler::sample(const float* logits, int64_t vocab, const TokenHistory& history) {
  // The row itself where no processor would change it (most requests): no vocabulary-sized copy
  // per request and step.
  const float* processed = logits;  // [vocab]
  if (logits_processors_active(params_, static_cast<int64_t>(history.output.size()))) {
    adjusted_.assign(logits, logits + vocab);
    apply_logits_processors(params_, history, adjusted_.data(), vocab);
    processed = adjusted_.data();
  }
  if (is_greedy(params_)) {
    // The one-hot distribution's draw, without building it; the generator still advances, as
    // in sample_from.
    const int64_t best = greedy_token(processed, vocab);
    if (best >= 0) {
      probs_.clear();
      (void)next_uniform();
      return static_cast<int32_t>(best);
    }
  }
  processed_distribution(params_, processed, vocab, &probs_);
  return sample_from(probs_);
}

int32_t Sampler::sample_from(const std::vector<float>& probs) {
  double total = 0;
  for (float q : probs) total += q;
  // Draw even for one-hot distributions so the generator advances the same way whatever the
  // parameters (keeps seeded runs aligned when only the filters change).
  const double r = next_uniform() * total;
  double cum = 0;
  int32_t last = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0f) continue;
    cum += probs[i];
    last = int32_t(i);
    if (r < cum) return last;
  }
  return last;  // rounding left r at the very top: the last possible id
}

}  // namespace dspark
