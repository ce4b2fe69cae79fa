// The draft-model drafter (spec.h make_draft_model_drafter): an independent small model with its
// own paged, prefix-cached KV proposing EAGLE-2-style trees, one draft forward per tree level
// for all requests together. Exposed here (not only through the factory) for its tests.
#pragma once

#include <algorithm>

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "dspark/kv.h"
#include "dspark/model.h"
#include "dspark/spec.h"

namespace dspark::spec {

class DraftModelDrafter final : public Drafter {
 public:
  static Result<std::unique_ptr<DraftModelDrafter>> create(DraftModelConfig config);

  const char* name() const override { return "draft-model"; }
  Status propose(std::span<const DraftInput> inputs, std::vector<DraftTree>& out) override;
  void release(RequestId id) override;
  int64_t pending_tokens(RequestId id, int64_t n_committed) const override;

  // No request holds KV (every block is free or cached and unreferenced) and the block
  // manager's invariants hold; the error names what is still held.
  Status check_idle() const;
  const kv::BlockManager& blocks() const { return blocks_; }

 private:
  struct Active;  // one request drafting in the current propose call (defined in the .cpp)
  DraftModelDrafter(DraftModelConfig config, kv::BlockManager blocks);
  // Brings the request's draft KV bookkeeping up to its committed tokens; false when it cannot
  // draft now (pool full, tokens outside the draft's vocabulary).
  bool sync(Active& a);
  Status catch_up(std::vector<Active>& active);
  // One forward over the chosen frontier nodes at depth of every request; false: none left.
  Result<bool> expand_level(std::vector<Active>& active, int32_t depth);
  // Ids the drafts come from: [0, draft_vocab()).
  int64_t draft_vocab() const {
    const int64_t v = config_.model->config().vocab_size;
    return config_.vocab_limit > 0 ? std::min<int64_t>(v, config_.vocab_limit) : v;
  }
  void drop(RequestId id);  // frees the request's blocks and forgets it

  DraftModelConfig config_;
  kv::BlockManager blocks_;
  KvStorage kv_;
  std::unique_ptr<Backend> own_backend_;  // when the config gave none
  Backend* backend_;                      // config_.backend or own_backend_
  // Committed tokens the block manager holds for each request (to detect a changed history).
  std::unordered_map<RequestId, std::vector<int32_t>> tokens_;
  ForwardOutput forward_out_;
};

}  // namespace dspark::spec
