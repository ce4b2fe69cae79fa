// Engine internals shared by engine.cpp (threading, submit/abort) and step.cpp (one step).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dspark/engine.h"
#include "dspark/kv.h"
#include "dspark/spec.h"

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
  Event tail;                          // the finishing token's event, sent with the final record
  Clock::time_point submitted, first_scheduled, first_token, last_token;
  bool scheduled = false;
  bool speculate = true;  // Request::speculate

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

struct Pending {
  RequestId id = 0;
  std::shared_ptr<Stream> stream;
  Request request;
  Clock::time_point submitted;
  std::optional<RequestId> group;  // submit_n: the first member's id, shared by the group
};

// One decoding request's speculation in the current step.
struct SpecWork {
  spec::DraftTree tree;        // the admitted nodes (empty: plain decode)
  std::vector<int64_t> slots;  // [tree.size()] scratch KV slots of the nodes
  int32_t n_drafted = 0;       // nodes the drafter proposed
  int32_t anchor_row = -1;     // logits row of the anchor; node k's row is anchor_row + 1 + k
  int32_t node_base = -1;      // batch token index of node 0
};

// Tokens one request produced in a step, ready for the stop checks and the stream.
struct Produced {
  std::vector<int32_t> tokens;  // [n] accepted drafts, then the bonus/sampled token
  std::vector<int32_t> rows;    // [n] logits row each token was drawn from (for logprobs)
  std::vector<int32_t> nodes;   // [n - 1] tree node of each accepted draft
};

struct Engine::Impl {
  EngineConfig config;
  std::vector<int32_t> eos_ids;

  // Guarded by q_mu: the hand-over between callers and the engine thread.
  std::mutex q_mu;
  std::condition_variable q_cv;     // engine thread waits for work
  std::condition_variable idle_cv;  // check_kv_idle waits for the end of a step
  std::deque<Pending> incoming;
  std::vector<RequestId> aborts;
  std::unordered_set<RequestId> live_ids;  // submitted and not yet finished
  RequestId next_id = 1;
  bool stopping = false;

  // Owned by the engine thread; also read under state_mu by check_kv_idle/stats.
  std::mutex state_mu;
  // What stats() and n_running() read: published at the end of every loop turn (under
  // state_mu), so readers never wait for a step.
  std::mutex snapshot_mu;
  EngineStats snapshot;  // guarded by snapshot_mu
  void publish_stats();  // call under state_mu
  // Final events of requests finished in this loop turn, pushed after publish_stats: whoever
  // waits for a request's end then reads stats that include the step that ended it.
  std::vector<std::pair<std::shared_ptr<Stream>, Event>> finals_pending;
  std::unique_ptr<kv::BlockManager> kv;
  std::unique_ptr<sched::Scheduler> scheduler;
  std::unique_ptr<KvStorage> storage;
  std::unique_ptr<Backend> backend;  // runs every forward and the host-parallel sampling
  std::unordered_map<RequestId, LiveRequest> requests;
  // The step's forward output, kept between steps (it holds its largest step's logits): a fresh
  // one re-allocated megabytes of logits every step, and what that cost depended on which
  // engine's thread did it (two engines 6% apart on the same work in one process).
  ForwardOutput forward_out;
  int64_t n_steps = 0, n_forward_tokens = 0;
  int64_t n_prompt_tokens = 0, n_generated_tokens = 0;
  double step_seconds = 0.0;  // EngineStats::step_seconds

  // Speculative decoding (engine thread only; totals read under state_mu).
  std::unique_ptr<spec::Drafter> drafter;  // null: plain decoding
  std::vector<int32_t> feature_layers;     // target hidden states the drafter reads, if any
  std::string spec_stopped;                // EngineStats::spec_stopped
  std::unique_ptr<spec::Calibrator> calibrator;
  std::unique_ptr<spec::SpsTable> sps;
  SpecStats spec_totals;
  double spec_mean_depth = 0.0;  // moving average of verified drafts per speculating request
  // [max_depth] moving average of the best calibrated survival per drafted depth, and the
  // drafter's learnt cost: how deep the next steps draft (spec::choose_draft_depth).
  std::vector<double> spec_forecast;
  std::unique_ptr<spec::DraftCostTable> draft_cost;
  // The draft model's forward latency by tokens (start-up profile): prices its catch-up.
  std::unique_ptr<spec::SpsTable> draft_level;

  std::thread thread;

  void run();  // the engine thread
  void admit(Pending p);
  void abort_live(RequestId id, FinishReason reason, const std::string& message);
  // Sends the final event (tail: the last tokens and text, if any), drops the request and
  // forgets its id.
  void finish(LiveRequest& r, FinishReason reason, const std::string& message, Event tail);
  void step();  // step.cpp
  // Copies K/V of n consecutive slots in every KV storage the engine keeps (copy-on-write of a
  // shared block, keeping a verified draft path).
  void copy_kv(int64_t from_slot, int64_t to_slot, int64_t n);
  void fail_all(const std::string& message);
  // Emits produced tokens through the stop checks (stopping early at a finish) and returns how
  // many were kept. step.cpp
  size_t emit(LiveRequest& r, const Produced& produced, const ForwardOutput& out);

  // speculation.cpp
  Status init_speculation();  // drafter, calibrator, SPS profile
  // Seeds draft_cost from timed draft-model forwards at the given sizes.
  Status profile_draft_model(const std::vector<int32_t>& sizes);
  // Drafts for the plan's decoding requests (as deep as spec::choose_draft_depth says), admits
  // nodes with the controller and reserves their scratch KV; work is indexed like plan.requests.
  void plan_speculation(const sched::StepPlan& plan, std::vector<SpecWork>& work);
  // The step's draft depth for the requests at index (positions in plan.requests):
  // spec::choose_draft_depth on the forecast, the drafter's costs and the coming load.
  // served: requests the step carries plus those waiting (DepthInput::base_commits).
  int32_t choose_depth(const sched::StepPlan& plan, const std::vector<size_t>& index,
                       int32_t served);
  // Seconds a draft model needs to forward the backlog of history it has not seen of the
  // requests at index (positions in plan.requests); 0 for other drafters.
  double catch_up_seconds(const sched::StepPlan& plan, const std::vector<size_t>& index) const;
  // Acceptance over the verified tree: the accepted drafts and the bonus token. Touches only r
  // (its sampler), so requests may run it in parallel.
  Produced accept_speculation(LiveRequest& r, const SpecWork& w, const ForwardOutput& out);
  // Commits the KV of the first n_keep accepted drafts, frees the other scratch slots and
  // updates the statistics and calibration.
  Status finish_speculation(LiveRequest& r, const SpecWork& w, const Produced& produced,
                            size_t n_keep);
  // A drafter error: speculation stops for good (plain decoding stays exact), the reason is
  // kept for stats(). Engine thread, with state_mu held (from step()).
  void stop_speculation(const std::string& why);
  // Hands a feature drafter the captured target hidden states of the tokens this step
  // committed: batch rows rows[i], whose K/V now lives at target slot slots[i].
  Status commit_features(const ForwardBatch& batch, const ForwardOutput& out,
                         std::span<const int32_t> rows, std::span<const int64_t> slots);
  // The logits of the node's row (-1: the anchor) after the processors of steps 1-4, with the
  // output extended by the path to the node: [vocab]. The row itself where no processor would
  // change it, else buffer [vocab] processed.
  const float* processed_logits(const LiveRequest& r, const SpecWork& w, const ForwardOutput& out,
                                int32_t node, std::vector<float>& buffer) const;
  spec::TargetDist target_dist(LiveRequest& r, const SpecWork& w, const ForwardOutput& out,
                               std::vector<std::vector<float>>& cache);
  spec::TargetToken target_token(const LiveRequest& r, const SpecWork& w,
                                 const ForwardOutput& out) const;
};

}  // namespace dspark::engine
