// The forward batch of one step: each scheduled request's tokens (prefill chunk or decode)
// and, after a decode's anchor, its admitted draft nodes attending to their ancestors.
#include <algorithm>

#include "engine_impl.h"

namespace dspark::engine {

namespace {

// The nodes of w after the request's anchor (batch row `anchor`): each sees the anchor and its
// ancestors, at the position of its depth.
void add_tree(const SpecWork& w, int32_t anchor, int32_t first_position, int32_t s,
              ForwardBatch& batch) {
  for (int32_t k = 0; k < w.tree.size(); ++k) {
    std::vector<int32_t> ancestors;
    for (int32_t n = w.tree.parent[k]; n >= 0; n = w.tree.parent[n]) {
      ancestors.push_back(anchor + 1 + n);
    }
    ancestors.push_back(anchor);
    std::reverse(ancestors.begin(), ancestors.end());
    batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size()));
    batch.tokens.push_back(w.tree.tokens[k]);
    batch.positions.push_back(first_position + w.tree.depth(k));
    batch.seq.push_back(s);
    batch.kv_slots.push_back(static_cast<int32_t>(w.slots[k]));
    batch.attend.push_back(std::move(ancestors));
  }
}

}  // namespace

Status Engine::Impl::build_batch(const sched::StepPlan& plan, std::vector<SpecWork>& work,
                                 StepBatch& sb) {
  const bool trees =
      std::any_of(work.begin(), work.end(), [](const SpecWork& w) { return w.tree.size() > 0; });
  const auto now = Clock::now();
  ForwardBatch& batch = sb.batch;
  batch.capture_layers = spec->feature_layers();
  sb.sample_row.assign(plan.requests.size(), -1);
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    auto table = kv->block_table(sr.id);
    auto it = requests.find(sr.id);
    if (!table.ok() || it == requests.end()) {
      return Error{"engine: scheduled request " + std::to_string(sr.id) + " has no KV or state"};
    }
    LiveRequest& r = it->second;
    if (!r.scheduled) {
      r.scheduled = true;
      r.first_scheduled = now;
    }
    const int32_t s = static_cast<int32_t>(batch.seqs.size());
    const int32_t start = static_cast<int32_t>(batch.tokens.size());
    batch.seqs.push_back(SeqRef{std::move(table.value()), sr.first_position});
    for (int32_t t = 0; t < sr.n_tokens; ++t) {
      const bool last = sr.samples && t == sr.n_tokens - 1;
      if (last) sb.sample_row[i] = static_cast<int32_t>(batch.logit_rows.size());
      batch.add_token(sr.tokens[t], sr.first_position + t, s, config.block_size, last);
      sb.commit_rows.push_back(static_cast<int32_t>(batch.tokens.size()) - 1);
      sb.commit_slots.push_back(batch.kv_slots.back());
      if (trees) {  // causal within the chunk, spelled out since other tokens use lists
        std::vector<int32_t>& a = batch.attend.emplace_back();
        for (int32_t j = start; j < start + t; ++j) a.push_back(j);
      }
    }
    SpecWork& w = work[i];
    if (w.tree.size() == 0) continue;
    // The anchor is this request's single token.
    w.anchor_row = sb.sample_row[i];
    w.node_base = static_cast<int32_t>(batch.tokens.size());
    add_tree(w, start, sr.first_position, s, batch);
  }
  n_forward_tokens += static_cast<int64_t>(batch.tokens.size());
  return Status::Ok();
}

}  // namespace dspark::engine
