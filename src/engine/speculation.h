// Speculative decoding inside the engine step (spec.h): the drafter, the admission controller's
// calibrator and SPS table, the draft-depth choice and the speculation statistics, behind the
// calls the step makes. Before the forward, plan() drafts for the step's decoding requests and
// admits nodes; after it, observe_forward() times the step, accept() walks each verified tree
// (per request, in parallel), finish() keeps the accepted path's KV and updates the statistics
// and calibration, and commit_features() hands a feature drafter the committed tokens' hidden
// states. Engine thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dspark/engine.h"
#include "dspark/kv.h"
#include "dspark/spec.h"
#include "live_request.h"

namespace dspark::engine {

// One decoding request's speculation in the current step.
struct SpecWork {
  spec::DraftTree tree;        // the admitted nodes (empty: plain decode)
  std::vector<int64_t> slots;  // [tree.size()] scratch KV slots of the nodes
  int32_t n_drafted = 0;       // nodes the drafter proposed
  int32_t anchor_row = -1;     // logits row of the anchor; node k's row is anchor_row + 1 + k
  int32_t node_base = -1;      // batch token index of node 0
};

// An engine always holds one: with SpecMethod::kNone, or once stop() ran, it has no drafter and
// every step decodes plainly (plan() leaves every work empty), while the statistics and, after
// a stop, the SPS table stay as they were.
class Speculation {
 public:
  // The drafter of config.spec.method, the calibrator and the SPS profile (timed forwards of
  // config.model on target_kv through backend, where config.spec.profile asks), and for a draft
  // model its own latency profile. eos_ids: the tokenizer's stop ids (the logits processors'
  // history).
  static Result<std::unique_ptr<Speculation>> create(const EngineConfig& config,
                                                     std::vector<int32_t> eos_ids,
                                                     KvStorage& target_kv, Backend& backend);

  // Target hidden states the drafter reads (ForwardBatch::capture_layers); empty for most.
  const std::vector<int32_t>& feature_layers() const { return feature_layers_; }
  // Drafts for the plan's decoding requests (as deep as spec::choose_draft_depth says), admits
  // nodes with the controller and reserves their scratch KV in kv; work is resized and indexed
  // like plan.requests. requests: the live requests by id (every scheduled one among them);
  // drafts a request's grammar forbids are cut before admission (cut_forbidden_drafts). load: the
  // scheduler's counts now (the waiting and coming requests a longer step delays).
  void plan(const sched::StepPlan& plan, LiveRequests& requests, const sched::SchedulerStats& load,
            kv::BlockManager& kv, std::vector<SpecWork>& work);
  // One target forward of n_tokens took seconds: the SPS table follows the machine's speed.
  void observe_forward(int32_t n_tokens, double seconds);
  // The step is committed: a drafted step's realised rate against plain decoding's goes to the
  // payoff guard (spec::PayoffGuard), which decides whether the next steps at its load draft.
  void end_step();
  // Acceptance over the verified tree: the accepted drafts and the bonus token. Touches only r
  // (its sampler), so requests may run it in parallel.
  Produced accept(LiveRequest& r, const SpecWork& w, const ForwardOutput& out) const;
  // Commits the KV of the first n_keep accepted drafts (kv's bookkeeping, target_kv's rows),
  // frees the other scratch slots and updates the statistics and calibration.
  Status finish(LiveRequest& r, const SpecWork& w, const Produced& produced, size_t n_keep,
                kv::BlockManager& kv, KvStorage& target_kv);
  // Hands a feature drafter the captured target hidden states of the tokens this step
  // committed: batch rows rows[i], whose K/V now lives at target slot slots[i]. Nothing without
  // feature layers.
  Status commit_features(const ForwardBatch& batch, const ForwardOutput& out,
                         std::span<const int32_t> rows, std::span<const int64_t> slots);
  // The request finished, was aborted or was preempted: the drafter drops its state.
  void release(RequestId id);
  // The drafter's side of a target KV copy (copy-on-write of a shared block).
  void copy_slots(int64_t from_slot, int64_t to_slot, int64_t n);
  // A drafter error: speculation stops for good (plain decoding stays exact), the reason is
  // kept for stats(). Engine thread, with state_mu held (from step()).
  void stop(const std::string& why);
  // EngineStats' spec, spec_mean_depth, spec_stopped and spec_calibration_ece.
  void fill_stats(EngineStats& s) const;

 private:
  static constexpr double kDepthAverageWeight = 0.05;  // moving average of the verified depth
  static constexpr int32_t kRefitEvery = 1024;         // verified rounds between calibration refits
  static constexpr double kForecastWeight = 0.1;       // moving average of the survival forecast
  static constexpr double kFreeDraftShare = 0.01;  // drafting under this share of a step is free
  static constexpr int64_t kProbeRounds = 4;       // verified rounds before a catch-up under load

  Speculation(const EngineConfig& config, std::vector<int32_t> eos_ids);
  // speculation_setup.cpp: the drafter, the calibrator and the SPS profile.
  Status init(const EngineConfig& config, KvStorage& target_kv, Backend& backend);
  // Seeds draft_cost_ from timed draft-model forwards at the given sizes.
  Status profile_draft_model(const std::vector<int32_t>& sizes, int32_t block_size,
                             Backend& backend);

  // Whether the payoff guard judges this engine's drafting (not at a fixed depth, not with a
  // flat SPS table).
  bool guarded() const;
  // Positions in plan.requests of the decoding requests that would draft: at their anchor, not
  // opted out, with room for a draft and the bonus.
  std::vector<size_t> drafting(const sched::StepPlan& plan, const LiveRequests& requests) const;
  // The step's draft depth for the requests at index (positions in plan.requests):
  // spec::choose_draft_depth on the forecast, the drafter's costs and the coming load.
  // served: requests the step carries plus those waiting (DepthInput::base_commits).
  int32_t choose_depth(const sched::StepPlan& plan, const LiveRequests& requests,
                       const std::vector<size_t>& index, int32_t served,
                       const sched::SchedulerStats& load);
  // Seconds a draft model needs to forward the backlog of history it has not seen of the
  // requests at index (positions in plan.requests); 0 for other drafters.
  double catch_up_seconds(const sched::StepPlan& plan, const LiveRequests& requests,
                          const std::vector<size_t>& index) const;
  // Calibrates the drafted trees, updates the forecast, admits nodes with the controller and
  // reserves their scratch KV: trees[k] was drafted for inputs[k], plan.requests[at[k]].
  void admit_drafts(const sched::StepPlan& plan, int32_t served, int32_t draft_depth,
                    const std::vector<spec::DraftInput>& inputs, const std::vector<size_t>& at,
                    std::vector<spec::DraftTree>& trees, kv::BlockManager& kv,
                    std::vector<SpecWork>& work);
  // The logits of the node's row (-1: the anchor) after the request's grammar mask and the
  // processors of steps 1-4, with the output extended by the path to the node: [vocab]. The
  // row itself where neither would change it, else buffer [vocab] processed.
  const float* processed_logits(LiveRequest& r, const SpecWork& w, const ForwardOutput& out,
                                int32_t node, std::vector<float>& buffer) const;
  spec::TargetDist target_dist(LiveRequest& r, const SpecWork& w, const ForwardOutput& out,
                               std::vector<std::vector<float>>& cache) const;
  spec::TargetToken target_token(LiveRequest& r, const SpecWork& w, const ForwardOutput& out) const;

  // What the engine's configuration fixes.
  SpecConfig sc_;
  int32_t max_num_batched_tokens_ = 0;
  int32_t max_num_seqs_ = 0;
  int64_t vocab_ = 0;    // the target's vocabulary
  int64_t d_model_ = 0;  // the target's hidden size (a feature row per captured layer)
  std::vector<int32_t> eos_ids_;

  std::unique_ptr<spec::Drafter> drafter_;  // null: plain decoding
  std::vector<int32_t> feature_layers_;     // target hidden states the drafter reads, if any
  std::string stopped_;                     // EngineStats::spec_stopped
  std::unique_ptr<spec::Calibrator> calibrator_;
  std::unique_ptr<spec::SpsTable> sps_;
  SpecStats totals_;
  spec::RecentAcceptance recent_;  // what the depth choice under load trusts
  double mean_depth_ = 0.0;        // moving average of verified drafts per speculating request
  // Whether drafting has paid at each load, and the current step's record for it (from
  // plan() through observe_forward() and finish() to end_step()).
  spec::PayoffGuard payoff_;
  struct StepRecord {
    bool drafted = false;     // the drafter ran this step (its time was spent)
    int32_t served = 0;       // DepthInput::base_commits
    int32_t base_tokens = 0;  // the step's forward tokens without drafts
    double draft_seconds = 0.0;
    double forward_seconds = 0.0;
    int64_t accepted = 0;  // drafts accepted over all requests
  } step_;
  int64_t refused_steps_ = 0;  // steps the guard kept from drafting (EngineStats)
  // [max_depth] moving average of the best calibrated survival per drafted depth, and the
  // drafter's learnt cost: how deep the next steps draft (spec::choose_draft_depth).
  std::vector<double> forecast_;
  std::unique_ptr<spec::DraftCostTable> draft_cost_;
  // The draft model's forward latency by tokens (start-up profile): prices its catch-up.
  std::unique_ptr<spec::SpsTable> draft_level_;
};

}  // namespace dspark::engine
