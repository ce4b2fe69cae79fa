// What the engine thread keeps of an admitted request, and the tokens a request produced in one
// step: shared by engine_impl.h (the step) and speculation.h (drafting and acceptance).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "constraint.h"
#include "dspark/engine.h"

namespace dspark::engine {

using Clock = std::chrono::steady_clock;

// A request known to the engine thread (admitted into the scheduler).
struct LiveRequest {
  RequestId id = 0;
  std::shared_ptr<Stream> stream;
  std::vector<int32_t> tokens;  // [n_prompt + n_generated] the prompt, then what was sampled
  int32_t n_prompt = 0;
  SpecStats spec;
  Sampler sampler;
  FinishChecker checker;
  StreamingDetokenizer detok;
  std::optional<FinishReason> finish;  // decided by the stop checks, applied after update()
  std::string finish_message;          // why, when finish is kError
  Event tail;                          // the finishing token's event, sent with the final record
  Clock::time_point submitted, first_scheduled, first_token, last_token;
  bool scheduled = false;
  bool speculate = true;  // Request::speculate
  // Request::grammar's matcher at the committed output (null: unconstrained), and a [vocab]
  // buffer for the masked logits of its plain sampling and logprobs.
  std::unique_ptr<Constraint> constraint;
  std::vector<float> masked;

  LiveRequest(RequestId id_, std::shared_ptr<Stream> s, Request r, const Tokenizer& tok,
              std::vector<int32_t> eos, Clock::time_point t)
      : id(id_),
        stream(std::move(s)),
        tokens(std::move(r.prompt)),
        n_prompt(static_cast<int32_t>(tokens.size())),
        sampler(r.params),
        checker(r.params, std::move(eos)),
        detok(tok),
        submitted(t),
        speculate(r.speculate) {}

  std::span<const int32_t> prompt() const { return {tokens.data(), size_t(n_prompt)}; }
  std::span<const int32_t> output() const {
    return std::span<const int32_t>(tokens).subspan(size_t(n_prompt));
  }
};

// The engine thread's live requests by id.
using LiveRequests = std::unordered_map<RequestId, LiveRequest>;

// Tokens one request produced in a step, ready for the stop checks and the stream.
struct Produced {
  std::vector<int32_t> tokens;  // [n] accepted drafts, then the bonus/sampled token
  std::vector<int32_t> rows;    // [n] logits row each token was drawn from (for logprobs)
  std::vector<int32_t> nodes;   // [n - 1] tree node of each accepted draft
};

}  // namespace dspark::engine
