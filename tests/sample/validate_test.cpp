// validate(): every out-of-range field is rejected with a message naming it.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>

#include "dspark/sample.h"

namespace dspark {
namespace {

constexpr int64_t kVocab = 100;

void expect_rejected(const std::function<void(SamplingParams&)>& edit, const std::string& field) {
  SamplingParams p;
  edit(p);
  const Status s = validate(p, kVocab);
  ASSERT_FALSE(s.ok()) << field;
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
}

TEST(Validate, AcceptsDefaultsAndBoundaries) {
  EXPECT_TRUE(validate(SamplingParams{}, kVocab).ok());
  SamplingParams p;
  p.temperature = 2.0f;
  p.top_k = -1;
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.repetition_penalty = 0.01f;
  p.logit_bias = {{0, -100.0f}, {99, 100.0f}};
  p.max_tokens = 1;
  p.min_tokens = 1;
  p.stop_token_ids = {99};
  p.stop = {"x"};
  p.logprobs = true;
  p.top_logprobs = 20;
  const Status s = validate(p, kVocab);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Validate, RejectsEachFieldOutOfRange) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  expect_rejected([](SamplingParams& p) { p.temperature = 2.5f; }, "temperature");
  expect_rejected([](SamplingParams& p) { p.temperature = -0.1f; }, "temperature");
  expect_rejected([&](SamplingParams& p) { p.temperature = nan; }, "temperature");
  expect_rejected([](SamplingParams& p) { p.top_k = -2; }, "top_k");
  expect_rejected([](SamplingParams& p) { p.top_p = 0.0f; }, "top_p");
  expect_rejected([](SamplingParams& p) { p.top_p = 1.01f; }, "top_p");
  expect_rejected([](SamplingParams& p) { p.min_p = -0.01f; }, "min_p");
  expect_rejected([](SamplingParams& p) { p.min_p = 1.5f; }, "min_p");
  expect_rejected([](SamplingParams& p) { p.presence_penalty = 2.1f; }, "presence_penalty");
  expect_rejected([](SamplingParams& p) { p.frequency_penalty = -2.1f; }, "frequency_penalty");
  expect_rejected([](SamplingParams& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty");
  expect_rejected(
      [](SamplingParams& p) { p.repetition_penalty = std::numeric_limits<float>::infinity(); },
      "repetition_penalty");
  expect_rejected([](SamplingParams& p) { p.logit_bias = {{100, 1.0f}}; }, "logit_bias");
  expect_rejected([](SamplingParams& p) { p.logit_bias = {{-1, 1.0f}}; }, "logit_bias");
  expect_rejected([](SamplingParams& p) { p.logit_bias = {{5, 101.0f}}; }, "logit_bias");
  expect_rejected([](SamplingParams& p) { p.max_tokens = 0; }, "max_tokens");
  expect_rejected([](SamplingParams& p) { p.min_tokens = -1; }, "min_tokens");
  expect_rejected([](SamplingParams& p) { p.min_tokens = 17; }, "min_tokens");
  expect_rejected([](SamplingParams& p) { p.stop_token_ids = {1, 100}; }, "stop_token_ids");
  expect_rejected([](SamplingParams& p) { p.stop = {"ok", ""}; }, "stop[1]");
  expect_rejected([](SamplingParams& p) { p.top_logprobs = 21; }, "top_logprobs");
  expect_rejected([](SamplingParams& p) { p.top_logprobs = 2; }, "top_logprobs");  // no logprobs
}

TEST(Validate, RejectsAnEmptyVocabulary) {
  const Status s = validate(SamplingParams{}, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("vocabulary"), std::string::npos);
}

}  // namespace
}  // namespace dspark
