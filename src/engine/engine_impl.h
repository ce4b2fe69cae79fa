// Engine internals shared by engine.cpp (threading, submit/abort) and step.cpp, step_batch.cpp
// (one step). What is speculative lives in Speculation (speculation.h), which the step calls.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "dspark/engine.h"
#include "dspark/kv.h"
#include "live_request.h"
#include "speculation.h"

namespace dspark::engine {

struct Pending {
  RequestId id = 0;
  std::shared_ptr<Stream> stream;
  Request request;
  Clock::time_point submitted;
  std::optional<RequestId> group;  // submit_n: the first member's id, shared by the group
};

// The forward of one step and where each request's rows are in it.
struct StepBatch {
  ForwardBatch batch;
  std::vector<int32_t> sample_row;  // [n_requests] logits row of each sampling request, else -1
  // Tokens whose K/V this step commits (a feature drafter gets their hidden states): batch rows
  // and the target slots where their K/V ends up.
  std::vector<int32_t> commit_rows;
  std::vector<int64_t> commit_slots;  // [commit_rows.size()]
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
  LiveRequests requests;
  // The step's forward output, kept between steps (it holds its largest step's logits): a fresh
  // one re-allocated megabytes of logits every step, and what that cost depended on which
  // engine's thread did it (two engines 6% apart on the same work in one process).
  ForwardOutput forward_out;
  int64_t n_steps = 0, n_forward_tokens = 0;
  int64_t n_prompt_tokens = 0, n_generated_tokens = 0;
  double step_seconds = 0.0;  // EngineStats::step_seconds

  // Speculative decoding (engine thread only; its statistics read under state_mu). Always
  // present: without a method (or once stopped) it drafts nothing, so the step needs no checks.
  std::unique_ptr<Speculation> spec;

  std::thread thread;

  void run();  // the engine thread
  void admit(Pending p);
  void abort_live(RequestId id, FinishReason reason, const std::string& message);
  // Sends the final event (tail: the last tokens and text, if any), drops the request and
  // forgets its id.
  void finish(LiveRequest& r, FinishReason reason, const std::string& message, Event tail);
  // step.cpp: schedule -> block copies -> drafts -> batch -> forward -> sample and accept ->
  // commit -> scheduler update.
  void step();
  Status copy_blocks(const sched::StepPlan& plan);
  // step_batch.cpp: the plan's tokens and the admitted draft nodes as one forward batch (sets
  // each work's anchor_row and node_base).
  Status build_batch(const sched::StepPlan& plan, std::vector<SpecWork>& work, StepBatch& sb);
  // Each sampling request's tokens from forward_out: a sample, or the accepted drafts and the
  // bonus token; [n_requests].
  std::vector<Produced> sample_and_accept(const sched::StepPlan& plan,
                                          const std::vector<SpecWork>& work, const StepBatch& sb);
  // Emits the produced tokens, keeps accepted draft KV (adding their rows to sb's commits) and
  // returns what the scheduler commits.
  Result<std::vector<sched::SampledToken>> commit(const sched::StepPlan& plan,
                                                  const std::vector<SpecWork>& work,
                                                  const std::vector<Produced>& produced,
                                                  StepBatch& sb);
  // Copies K/V of n consecutive slots in every KV storage the engine keeps (copy-on-write of a
  // shared block, keeping a verified draft path).
  void copy_kv(int64_t from_slot, int64_t to_slot, int64_t n);
  void fail_all(const std::string& message);
  // Emits produced tokens through the stop checks (stopping early at a finish) and returns how
  // many were kept. step.cpp
  size_t emit(LiveRequest& r, const Produced& produced, const ForwardOutput& out);
};

}  // namespace dspark::engine
