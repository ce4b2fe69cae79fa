// Inference engine: one engine thread owns the scheduler, the KV block manager, the KV storage
// and the model, and runs continuous-batching steps (schedule -> one forward for every scheduled
// request -> per-request sampling -> stop checks and detokenization -> stream events ->
// scheduler update). submit(), abort() and stop() are thread-safe; each request's events come
// through its own Stream, a thread-safe queue the caller reads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/model.h"
#include "dspark/sample.h"
#include "dspark/sched.h"
#include "dspark/status.h"
#include "dspark/tokenizer.h"

namespace dspark::engine {

using RequestId = sched::RequestId;

enum class SpecMethod { kNone, kNgram, kDraftModel, kDSpark };
// "none", "ngram", "draft-model", "dspark"
const char* spec_method_name(SpecMethod method);

// Speculative decoding (spec.h): output is exactly what plain decoding gives (greedy: token for
// token; sampling: in distribution).
struct SpecConfig {
  SpecMethod method = SpecMethod::kNone;
  std::shared_ptr<const Model> draft_model;  // kDraftModel: same tokenizer as the target
  // kDSpark: a DeepSpec DSpark checkpoint folder (config.json + *.safetensors) trained for the
  // target; its context K/V sits at the target's KV slots (its own pool of the same size).
  std::string dspark_checkpoint;
  int32_t draft_kv_blocks = 0;  // the draft's KV pool; 0: as many as the target's
  int32_t max_depth = 6;        // deepest drafted token
  int32_t tree_budget = 12;     // nodes drafted per request per step
  int32_t draft_top_k = 2;      // children expanded per draft node (1: chains)
  // Comparison mode: verify every drafted node up to this depth, ignoring load and confidence.
  std::optional<int32_t> fixed_depth;
  bool profile = true;  // time target forwards at start-up for the controller's SPS(B)
  // With profile: where the start-up profile is kept between runs (a path prefix; ".target" and
  // ".draft" files beside it), so a warm start times 3 sizes instead of all; "" keeps none. The
  // caller names it after everything the timings depend on (model files, drafter, CPU, threads,
  // version): src/engine/profile_cache.h.
  std::string profile_cache;
};

// Speculation counters, per request and summed over the engine.
struct SpecStats {
  int64_t n_rounds = 0;    // decode steps of speculating requests
  int64_t n_drafted = 0;   // tokens the drafter proposed
  int64_t n_verified = 0;  // drafted tokens the controller admitted to the target forward
  int64_t n_accepted = 0;  // verified tokens accepted
  // [max_depth] per depth d (index d-1): rounds that verified a node at depth d, and rounds
  // that accepted one there.
  std::vector<int64_t> verified_at, accepted_at;
  // Mean tokens committed per round: accepted drafts plus the bonus (1 without speculation).
  double mean_accepted_length() const;
};

// Engines sharing one StepTurns take turns at their steps: an engine waits before each step
// while another one waiting has the turn, and passes the turn on after it. Two configurations
// run side by side in one process then see the same machine step by step, which a machine whose
// speed drifts from one run to the next cannot give (paired benchmarks; `dspark generate
// --compare-plain`). An engine with nothing to do never waits nor holds the others up.
class StepTurns {
 public:
  explicit StepTurns(int n_players);
  int n_players() const { return static_cast<int>(waiting_.size()); }
  // Blocks until player (0 <= player < n_players) has the turn.
  void begin(int player);
  // Hands the turn to the next waiting player (in player order), or frees it.
  void end(int player);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char> waiting_;  // [n_players]
  int turn_ = -1;              // who holds the turn; -1: free
};

struct EngineConfig {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;  // its vocabulary must not exceed the model's
  int32_t kv_blocks = 0;                       // KV pool size in blocks
  int32_t block_size = 16;                     // tokens per KV block
  int32_t max_num_batched_tokens = 512;        // tokens computed per step, all requests together
  int32_t max_num_seqs = 16;                   // running requests
  bool prefix_caching = true;
  std::optional<int32_t> long_prefill_chunk;  // most prompt tokens one request prefills per step
  int threads = 0;                            // forward threads; 0: physical cores
  int64_t max_context = 0;  // tokens a request may hold (prompt + max_tokens); 0: the model's
  SpecConfig spec;
  std::shared_ptr<StepTurns> turns;  // optional: take turns at steps with other engines
  int turn_player = 0;               // this engine's player number in turns
};

struct Request {
  std::vector<int32_t> prompt;  // [n_prompt] token ids
  SamplingParams params;        // max_tokens, stop strings/ids, seed, ...
  // false: never drafted for (decoded as plain decoding would; other requests still speculate).
  bool speculate = true;
  // Constrained decoding (structured outputs): the output must match this grammar, compiled for
  // the model's vocabulary (its size must equal the model's vocab_size). Its mask applies to
  // the target's logits before sampling, before speculative acceptance and before logprobs, so
  // the output follows the target's distribution restricted to what the grammar allows (greedy:
  // the best allowed token); drafts the grammar forbids are cut before verification. EOS is
  // allowed only where the grammar may end, and the request stops (kStop) once it has ended.
  // null: unconstrained. n > 1 choices get one matcher each.
  std::shared_ptr<const CompiledGrammar> grammar;
};

using FinishReason = dspark::FinishReason;
using dspark::finish_reason_name;

// Seconds, measured from submit().
struct Timings {
  double queue_s = 0.0;   // submit -> first scheduled
  double ttft_s = 0.0;    // submit -> first token (0 when none was generated)
  double decode_s = 0.0;  // first token -> last token
};

struct FinalRecord {
  FinishReason reason = FinishReason::kLength;
  std::string message;  // why, for kError
  int32_t n_prompt_tokens = 0;
  int32_t n_completion_tokens = 0;  // sampled tokens, a stop token included
  Timings timings;
  SpecStats spec;
};

// One streamed event: new tokens and the text they completed; the last event of a request
// carries `final` (and possibly trailing text).
struct Event {
  std::vector<int32_t> tokens;  // [n_new] sampled token ids, in order
  std::string text;             // text to show (stop strings and stop tokens' text excluded)
  // [n_new] when the request asked for logprobs: each token's logprob under the model's raw
  // distribution (with a grammar: restricted to the tokens it allows there) and the
  // top_logprobs alternatives.
  std::vector<TokenLogprobs> logprobs;
  std::optional<FinalRecord> final;
};

// Everything a request produced, gathered from its events.
struct Completion {
  std::vector<int32_t> tokens;  // [n_completion]
  std::string text;
  std::vector<TokenLogprobs> logprobs;  // [n_completion] when asked
  FinalRecord final;
  int32_t n_events = 0;
};

// A request's event queue: the engine pushes, the caller pops. Thread-safe.
class Stream {
 public:
  explicit Stream(RequestId id) : id_(id) {}
  RequestId id() const { return id_; }
  // Blocks until the next event. After the final event, returns it again.
  Event next();
  // The next event if one arrives within timeout.
  std::optional<Event> next_for(std::chrono::milliseconds timeout);
  // Reads events up to and including the final one.
  Completion collect();

  void push(Event event);  // engine side; events after a final one are dropped

 private:
  RequestId id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::optional<Event> final_;  // kept once popped, for repeated next() calls
  bool closed_ = false;         // a final event was pushed
};

struct EngineStats {
  sched::SchedulerStats sched;
  int64_t n_steps = 0;
  int64_t n_forward_tokens = 0;
  int64_t n_prompt_tokens = 0;     // prompt tokens of admitted requests
  int64_t n_generated_tokens = 0;  // tokens streamed to requests
  double step_seconds = 0.0;       // wall time spent in steps (excludes waiting for work/turns)
  SpecMethod spec_method = SpecMethod::kNone;
  SpecStats spec;
  double spec_mean_depth = 0.0;       // drafted tokens verified per speculating request, recent
  double spec_calibration_ece = 0.0;  // of the controller's calibrated confidences
  // Steps where the depth choice would have drafted but drafting had not paid at that load
  // (spec::PayoffGuard), so they decoded plainly.
  int64_t spec_refused_steps = 0;
  // Why speculation stopped mid-run (a drafter error; decoding goes on plainly); empty: it runs.
  std::string spec_stopped;
};

class Engine {
 public:
  // Checks the configuration, builds the KV pool and scheduler and starts the engine thread.
  static Result<std::unique_ptr<Engine>> create(EngineConfig config);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Checks the request (non-empty prompt, ids in the model's vocabulary, prompt + max_tokens
  // within the model context and the KV pool, validate(params)) and queues it; errors name the
  // problem and leave the engine untouched.
  Result<std::shared_ptr<Stream>> submit(Request request);
  // n completions of one request (n >= 1), checked as submit() does, all or none queued: choice
  // i samples with seed request.params.seed + i (wrapping), and otherwise runs as an
  // independent request with its own id, stream, finish and abort. The prompt is computed once:
  // the first member to run prefills it while the others wait, then each of them takes the
  // first n_prompt - 1 tokens' KV from it (full blocks shared, the partial last block copied)
  // and computes only its last prompt token. When no member runs (the prefilling one was
  // aborted, finished or preempted) the next waiting one prefills instead.
  Result<std::vector<std::shared_ptr<Stream>>> submit_n(Request request, int32_t n);
  // Ends a live request (final reason kAbort) at the next step boundary; errors on an unknown or
  // already finished id.
  Status abort(RequestId id);
  // Aborts every live request, finishes their streams and joins the engine thread. Idempotent.
  void stop();

  // Waits (up to timeout) until no request is live, then checks the KV block manager: its
  // invariants hold and every block is free or cached with no reference. Errors otherwise.
  Status check_kv_idle(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The counters as the engine thread published them at the end of its last step (never waits
  // for the step in progress).
  EngineStats stats() const;
  // Requests running (admitted, prefilling or decoding) at the end of the last step: what an
  // admission check on every submit reads.
  int32_t n_running() const;
  // The most prompt + max_tokens a request may have: the model context (max_context) and what
  // the KV pool holds for one request (sched::max_request_tokens), the limits submit() checks.
  int64_t max_request_tokens() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dspark::engine
