// Range checks on request sampling parameters (the OpenAI API's ranges), with messages that name
// the field and the accepted range.
#include <cmath>
#include <string>

#include "dspark/sample.h"

namespace dspark {

namespace {

// Written as !(in range) so NaN fails every check.
bool in_range(float v, float lo, float hi) {
  return v >= lo && v <= hi;
}

std::string show(float v) {
  return std::to_string(v);
}

Status check_id(const char* field, int32_t id, int64_t vocab) {
  if (id < 0 || int64_t(id) >= vocab) {
    return Error{std::string(field) + ": token id " + std::to_string(id) + " is outside [0, " +
                 std::to_string(vocab) + ")"};
  }
  return Status::Ok();
}

}  // namespace

Status validate(const SamplingParams& p, int64_t vocab) {
  if (vocab <= 0) return Error{"validate: vocabulary size must be positive"};
  if (!in_range(p.temperature, 0.0f, 2.0f)) {
    return Error{"temperature must be in [0, 2], got " + show(p.temperature)};
  }
  if (p.top_k < -1) {
    return Error{"top_k must be >= 0 (or -1 for off), got " + std::to_string(p.top_k)};
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return Error{"top_p must be in (0, 1], got " + show(p.top_p)};
  }
  if (!in_range(p.min_p, 0.0f, 1.0f)) return Error{"min_p must be in [0, 1], got " + show(p.min_p)};
  if (!in_range(p.presence_penalty, -2.0f, 2.0f)) {
    return Error{"presence_penalty must be in [-2, 2], got " + show(p.presence_penalty)};
  }
  if (!in_range(p.frequency_penalty, -2.0f, 2.0f)) {
    return Error{"frequency_penalty must be in [-2, 2], got " + show(p.frequency_penalty)};
  }
  if (!(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty))) {
    return Error{"repetition_penalty must be a finite number > 0, got " +
                 show(p.repetition_penalty)};
  }
  for (const auto& [id, bias] : p.logit_bias) {
    DSPARK_RETURN_IF_ERROR(check_id("logit_bias", id, vocab));
    if (!in_range(bias, -100.0f, 100.0f)) {
      return Error{"logit_bias for token " + std::to_string(id) + " must be in [-100, 100], got " +
                   show(bias)};
    }
  }
  if (p.max_tokens < 1) {
    return Error{"max_tokens must be >= 1, got " + std::to_string(p.max_tokens)};
  }
  if (p.min_tokens < 0 || p.min_tokens > p.max_tokens) {
    return Error{"min_tokens must be in [0, max_tokens = " + std::to_string(p.max_tokens) +
                 "], got " + std::to_string(p.min_tokens)};
  }
  for (int32_t id : p.stop_token_ids) DSPARK_RETURN_IF_ERROR(check_id("stop_token_ids", id, vocab));
  for (size_t i = 0; i < p.stop.size(); ++i) {
    if (p.stop[i].empty()) return Error{"stop[" + std::to_string(i) + "] is an empty string"};
  }
  if (p.top_logprobs < 0 || p.top_logprobs > 20) {
    return Error{"top_logprobs must be in [0, 20], got " + std::to_string(p.top_logprobs)};
  }
  if (p.top_logprobs > 0 && !p.logprobs) {
    return Error{"top_logprobs needs logprobs to be enabled"};
  }
  return Status::Ok();
}

}  // namespace dspark
