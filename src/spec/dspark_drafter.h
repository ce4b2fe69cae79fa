// The DSpark drafter (spec.h make_dspark_drafter): context K/V derived from the target's
// features at the target's own KV slots, one non-causal block pass per group of requests, then
// the Markov and confidence heads. Exposed here (not only through the factory) for its tests.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <vector>

#include "dspark/model.h"
#include "dspark/spec.h"
#include "dspark_checkpoint.h"
#include "dspark_forward.h"
#include "dspark_heads.h"

namespace dspark::spec {

class DSparkDrafter final : public Drafter {
 public:
  static Result<std::unique_ptr<DSparkDrafter>> create(const DSparkDrafterConfig& config);

  const char* name() const override { return "dspark"; }
  Status propose(std::span<const DraftInput> inputs, std::vector<DraftTree>& out) override;
  // Per-request state lives only at the target's slots: nothing to drop.
  void release(RequestId id) override { (void)id; }
  std::vector<int32_t> feature_layers() const override { return ck_.target_layer_ids; }
  // Checks and keeps the features; their projection into the context K/V waits for the next
  // propose (or copy), so a server whose load keeps it from drafting does not project every
  // committed token of every step. Past config.max_pending_floats they are projected, or
  // dropped after config.rest_steps_to_drop rests, and a request whose context holds a dropped
  // slot drafts nothing.
  Status commit_features(std::span<const int64_t> slots, std::span<const int32_t> positions,
                         std::span<const float> features) override;
  // Ranges outside the target's slots are ignored.
  void copy_slots(int64_t from_slot, int64_t to_slot, int64_t n) override;
  // Counts toward config.rest_steps_to_drop; a propose that drafts resets the count.
  void rest() override;
  // Projects the kept features into the context K/V now (in commit order, so a slot committed
  // twice ends with its last features).
  void project_context();

  int32_t block_size() const { return ck_.block_size; }  // B, drafts per round at most
  int32_t mask_token() const { return ck_.mask_token; }
  const dspark_detail::Checkpoint& checkpoint() const { return ck_; }
  // With keep on, propose keeps each input's base logits U ([n_nodes, V'] over the draft
  // vocabulary's columns; empty for inputs that drafted nothing) for last_logits() (the
  // reference test compares them).
  void keep_logits(bool keep) { keep_logits_ = keep; }
  const std::vector<std::vector<float>>& last_logits() const { return last_logits_; }

 private:
  struct Active;  // one request drafting in a propose call (defined in the .cpp)
  DSparkDrafter(const DSparkDrafterConfig& config, dspark_detail::Checkpoint ck,
                std::unique_ptr<Backend> own_backend);
  Status check_input(const DraftInput& in, size_t index) const;
  // One block pass and the heads for up to max_requests requests.
  void propose_group(std::span<const Active> group, std::span<const DraftInput> inputs,
                     std::vector<DraftTree>& out);

  DSparkDrafterConfig config_;
  dspark_detail::Checkpoint ck_;
  int64_t target_slots_;  // kv_blocks * block_size: slots [0, target_slots_) mirror the target's
  KvStorage kv_;          // target slots, then max_requests * B scratch slots for the blocks
  std::unique_ptr<Backend> own_backend_;  // when the config gave none
  Backend* backend_;                      // config.backend or own_backend_
  std::mt19937_64 rng_;
  std::mutex mutex_;      // guards the scratch, the KV and the generator
  LayerScratch scratch_;  // the draft layers' activations (reused, grown on demand)
  dspark_detail::HeadScratch head_scratch_;
  dspark_detail::BlockBatch batch_;
  std::vector<float> h_;            // [rows, d_model]
  std::vector<float> h_rows_;       // [drafted rows, d_model] rows that need logits
  std::vector<float> logits_;       // [drafted rows, V']
  std::vector<int32_t> ctx_slots_;  // [chunk] project_pending
  // Committed features not yet projected, in commit order.
  std::vector<int64_t> pending_slots_;      // [n_pending]
  std::vector<int32_t> pending_positions_;  // [n_pending]
  std::vector<float> pending_features_;     // [n_pending, n_features * d_model]
  // 1 where the features last committed at a target slot were dropped unprojected, so its
  // context K/V is stale; cleared when new features there are projected.
  std::vector<uint8_t> dropped_;  // [target_slots_]
  int64_t rest_steps_ = 0;        // rest() calls since the last propose that drafted
  // Projects the pending features (mutex_ held).
  void project_pending();
  // Drops the pending features unprojected, marking their slots (mutex_ held).
  void drop_pending();
  // Whether the input's context (positions before its anchor) holds a dropped slot (mutex_
  // held; after check_input).
  bool context_dropped(const DraftInput& in) const;
  bool keep_logits_ = false;
  std::vector<std::vector<float>> last_logits_;  // [n_inputs][n_nodes * V']
};

}  // namespace dspark::spec
