// Continuous-batching scheduler: pure bookkeeping over token counts (computed vs known tokens),
// with KV capacity from a kv::BlockManager. Each step, schedule() picks requests and how many
// tokens each computes under a token budget (running requests first, then waiting ones in
// arrival order, long prompts in chunks), preempting the newest running request by recompute
// when KV blocks run out; the engine runs the forward and hands the sampled tokens to update().
// Requests of one group (n completions of one prompt) prefill the prompt once and fork its KV.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dspark/finish.h"
#include "dspark/kv.h"
#include "dspark/status.h"

namespace dspark::sched {

using RequestId = kv::RequestId;

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // tokens computed per step, all requests together
  int32_t max_num_seqs = 64;              // running requests (mid-prefill included)
  // Most prompt tokens one request prefills per step, so several prompts and the decodes share
  // a step; unset: limited by the budget only.
  std::optional<int32_t> long_prefill_chunk;
};

enum class RequestState { kWaiting, kRunning, kPreempted, kFinished };
using FinishReason = dspark::FinishReason;

struct FinishedRequest {
  RequestId id = 0;
  FinishReason reason = FinishReason::kLength;
  std::vector<int32_t> output;  // [n_generated] sampled tokens
  std::string message;          // why, for kError
};

// One request's share of a step: positions [first_position, first_position + n_tokens).
struct ScheduledRequest {
  RequestId id = 0;
  bool prefill = false;         // prompt (or recompute) tokens; false: one decode token
  int32_t first_position = 0;   // tokens already computed before this step
  int32_t n_tokens = 0;         // tokens computed this step
  std::vector<int32_t> tokens;  // [n_tokens] input token ids at those positions
  bool samples = false;         // the last position is the newest token: sample from its logits
};

struct StepPlan {
  int64_t step = 0;
  std::vector<ScheduledRequest> requests;  // running requests first, in admission order
  std::vector<kv::BlockCopy> copies;       // copy-on-write block copies to do before the forward
  std::vector<RequestId> preempted;        // now waiting again, to be recomputed from scratch
  std::vector<FinishedRequest> finished;   // failed while scheduling (can never fit in KV)
  int32_t n_tokens = 0;                    // sum of requests[i].n_tokens
};

// A token sampled for a request whose ScheduledRequest::samples was set; stop ends the request
// (a stop token or string seen by the engine). With speculative decoding, accepted holds the
// drafted tokens verified in this step and accepted before token: the engine has already committed
// their KV after the step's positions (BlockManager::keep_path), so they count as computed.
struct SampledToken {
  RequestId id = 0;
  int32_t token = 0;
  bool stop = false;
  std::vector<int32_t> accepted{};  // [n_accepted]
};

struct SchedulerStats {
  int32_t n_running = 0;
  int32_t n_waiting = 0;         // preempted ones included
  int32_t n_kv_blocks_used = 0;  // referenced blocks (cached unreferenced ones count as free)
  int32_t n_kv_blocks = 0;
  double kv_usage = 0.0;      // n_kv_blocks_used / n_kv_blocks
  int64_t n_preemptions = 0;  // since creation
  int64_t n_prefix_hit_tokens = 0;
  int64_t n_forked_tokens = 0;  // prompt tokens whose KV a group member took from another
};

struct RequestInfo {
  RequestState state = RequestState::kWaiting;
  int32_t n_prompt = 0;
  int32_t n_computed = 0;  // tokens whose KV is written (0 while waiting)
  std::vector<int32_t> output;
};

// The most tokens (prompt + max_new_tokens) one request may ask for in a KV pool of this
// configuration: at most prompt + max_new_tokens - 1 are ever in KV (the last sampled token is
// never an input), and with prefix caching one block is kept spare (a recompute of a fully
// cached, block-aligned sequence briefly holds one block more, the copy-on-write source). Within
// this bound a request always fits once it runs alone, which is what rules out deadlock. The
// rule add_request enforces, for callers that check before submitting.
int64_t max_request_tokens(const kv::KvConfig& kc);

class Scheduler {
 public:
  // Errors on a non-positive budget, max_num_seqs or chunk size.
  static Result<Scheduler> create(const SchedulerConfig& config, kv::BlockManager& kv);

  // Queues a request. Errors on a duplicate live id, an empty prompt, max_new_tokens < 1, or a
  // request whose prompt plus output could not fit in the whole KV pool even alone.
  // Requests given the same group share their prompt (an error otherwise): while a member of the
  // group runs with fewer than n_prompt - 1 tokens computed, the others wait (holding no blocks
  // and not holding up later requests); then each forks the first n_prompt - 1 tokens' KV from
  // it (BlockManager::fork_request) and computes only its last prompt token. A member finding
  // no group member running (none admitted yet, or all finished, aborted or preempted) is
  // admitted as usual and prefills for the rest. A member finishing in update() first forks the
  // waiting ones from its KV (they run from the next step), so an early finish (max_new_tokens
  // 1, a stop at the first token) costs no second prefill. A preempted member with output
  // recomputes.
  Status add_request(RequestId id, std::vector<int32_t> prompt, int32_t max_new_tokens,
                     std::optional<RequestId> group = std::nullopt);

  // Plans the next step. Errors while the previous plan awaits update(); a plan without requests
  // needs no update(). On return the BlockManager holds every scheduled request with its block
  // table covering the step's positions (a decode's input token, sampled last step, is appended
  // here, so its KV slot exists from now on).
  Result<StepPlan> schedule();
  // Commits a step: marks computed KV, appends accepted and sampled tokens to their requests,
  // finishes requests at max_new_tokens or on stop and frees their blocks. sampled holds one token
  // per request that samples in this plan; it may omit (or still carry) requests aborted since
  // schedule(), which are skipped. Errors without change on a mismatch.
  Result<std::vector<FinishedRequest>> update(const StepPlan& plan,
                                              std::span<const SampledToken> sampled);
  // Ends a live request in any state and frees its blocks; errors on an unknown id.
  Status abort(RequestId id);

  SchedulerStats stats() const;
  Result<RequestInfo> info(RequestId id) const;
  bool has_unfinished() const { return !requests_.empty(); }
  const SchedulerConfig& config() const { return config_; }

 private:
  struct Request {
    RequestId id = 0;
    RequestState state = RequestState::kWaiting;
    std::vector<int32_t> tokens;  // [n_prompt + n_output] prompt then sampled tokens
    int32_t n_prompt = 0;
    int32_t max_new_tokens = 0;
    int32_t n_prefill = 0;           // tokens held at admission (prompt, plus output on recompute)
    int32_t n_computed = 0;          // KV written, as told to the BlockManager
    int64_t scheduled_step = -1;     // step of the plan that last scheduled it
    std::optional<RequestId> group;  // requests sharing this prompt (add_request)
  };
  // For a waiting request: what its group allows (see add_request).
  struct ForkPlan {
    bool wait = false;                // a group member is still computing the prompt
    std::optional<RequestId> source;  // a running group member whose KV holds the prompt
  };
  Scheduler(const SchedulerConfig& config, kv::BlockManager& kv) : config_(config), kv_(&kv) {}

  int32_t n_output(const Request& r) const { return int32_t(r.tokens.size()) - r.n_prompt; }
  void preempt(Request& r, StepPlan& plan);
  bool schedule_running(Request& r, int32_t& budget, StepPlan& plan);  // false: r preempted
  ForkPlan fork_plan(const Request& r) const;
  // Errors when it does not fit; forks the prompt's KV from source when given.
  Status admit(Request& r, std::optional<RequestId> source, int32_t& budget, StepPlan& plan);
  void start(Request& r, const kv::AddResult& added, std::vector<kv::BlockCopy>& copies);
  // Forks the waiting members of source's group from its KV before it finishes (update()).
  void hand_over(const Request& source);
  FinishedRequest finish(Request& r, FinishReason reason, std::string message);
  int32_t prefill_chunk(int32_t remaining, int32_t budget) const;

  SchedulerConfig config_;
  kv::BlockManager* kv_;
  std::unordered_map<RequestId, Request> requests_;  // live requests
  std::deque<RequestId> waiting_;                    // front is admitted first
  std::vector<RequestId> running_;                   // admission order: back is preempted first
  int64_t step_ = 0;
  bool in_flight_ = false;
  // Block copies of forks made in update(), done first in the next plan: no block is allocated
  // or written before then, so a copy source freed since still holds its rows.
  std::vector<kv::BlockCopy> pending_copies_;
  int64_t n_preemptions_ = 0;
};

}  // namespace dspark::sched
