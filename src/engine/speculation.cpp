// Speculation in each engine step: drafting and admission for the step's decoding requests (as
// deep as the depth choice says), acceptance over the verified tree, the KV commit of the
// accepted path with the statistics and calibration, and a feature drafter's commits.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "speculation.h"

namespace dspark::engine {

namespace {

// The admitted nodes that acceptance can verify exactly: closed under parents, and each sibling
// group drawn from a q kept as a prefix of its draw order (recursive rejection sampling assumes
// the verified siblings are the first draws). admitted: ascending node indices.
std::vector<int32_t> exact_subset(const spec::DraftTree& tree, std::span<const int32_t> admitted) {
  std::vector<char> kept(size_t(tree.size()), 0);
  std::vector<char> in(size_t(tree.size()), 0);
  for (int32_t n : admitted) {
    if (n >= 0 && n < tree.size()) in[size_t(n)] = 1;
  }
  std::vector<int32_t> out;
  for (int32_t n = 0; n < tree.size(); ++n) {
    if (!in[size_t(n)]) continue;
    const int32_t up = tree.parent[size_t(n)];
    bool ok = up < 0 || kept[size_t(up)];
    for (int32_t e = 0; ok && e < n && tree.q_index[size_t(n)] >= 0; ++e) {
      // An earlier draw of the same group that is not verified breaks the prefix.
      if (tree.parent[size_t(e)] == up && tree.q_index[size_t(e)] == tree.q_index[size_t(n)] &&
          !kept[size_t(e)]) {
        ok = false;
      }
    }
    if (ok) {
      kept[size_t(n)] = 1;
      out.push_back(n);
    }
  }
  return out;
}

}  // namespace

double Speculation::catch_up_seconds(const sched::StepPlan& plan, const LiveRequests& requests,
                                     const std::vector<size_t>& index) const {
  if (!draft_level_) return 0.0;
  // A drafting request always has up to max_depth + 1 new tokens (accepted drafts and the
  // bonus) to forward first; the drafter's measured time per step includes those, so only a
  // longer backlog (a prompt, tokens decoded without drafting) is a catch-up.
  const int64_t per_round = int64_t{sc_.max_depth} + 1;
  int64_t pending = 0;
  for (size_t i : index) {
    const LiveRequest& r = requests.at(plan.requests[i].id);
    pending += std::max<int64_t>(
        0, drafter_->pending_tokens(r.id, static_cast<int64_t>(r.tokens.size())) - per_round);
  }
  return pending > 0
             ? draft_level_->latency(static_cast<int32_t>(std::min<int64_t>(pending, 1 << 30)))
             : 0.0;
}

int32_t Speculation::choose_depth(const sched::StepPlan& plan, const LiveRequests& requests,
                                  const std::vector<size_t>& index, int32_t served,
                                  const sched::SchedulerStats& load) {
  // [max_depth] the lower of the forecast and recent acceptance, for what others pay for.
  const std::vector<double> cautious =
      spec::cautious_survival(forecast_, recent_.verified_at(), recent_.accepted_at());
  spec::DepthInput di;
  di.base_tokens = plan.n_tokens;
  di.base_commits = served;
  di.n_drafting = static_cast<int32_t>(index.size());
  di.max_depth = sc_.max_depth;
  di.max_draft_tokens = std::max(0, max_num_batched_tokens_ - plan.n_tokens);
  // Alone, a wrong guess costs only this request's step: the forecast keeps drafting fresh.
  // Under load other requests pay for it, so judge on the cautious estimate and err toward
  // plain decoding: calibrated confidence is optimistic before a few rounds are verified and
  // wherever the calibration is off.
  di.survival = served > 1 ? cautious : forecast_;
  di.free_draft_seconds = kFreeDraftShare * sps_->latency(plan.n_tokens);
  di.n_prefilling = static_cast<int32_t>(
      std::count_if(plan.requests.begin(), plan.requests.end(),
                    [](const sched::ScheduledRequest& sr) { return sr.prefill; }));
  if (draft_level_) {
    double remaining = 0;
    for (size_t i : index) {
      const LiveRequest& r = requests.at(plan.requests[i].id);
      remaining += r.sampler.params().max_tokens - static_cast<double>(r.output().size());
    }
    di.catch_up_seconds = catch_up_seconds(plan, requests, index);
    di.remaining_tokens = remaining / double(index.size());
    if (di.catch_up_seconds > 0.0) {
      const int32_t coming = std::clamp(load.n_running + load.n_waiting, 1, max_num_seqs_);
      // Until a few drafts have been verified the acceptance is a guess. A catch-up on a guess
      // is tried only where it is cheapest, on an otherwise idle server; after that it must
      // pay at the coming load.
      if (totals_.n_rounds < kProbeRounds) {
        if (coming > 1) return 0;
      } else {
        di.cautious_survival = cautious;
        di.coming_requests = coming;
      }
    }
  }
  return spec::choose_draft_depth(di, *sps_, *draft_cost_);
}

std::vector<size_t> Speculation::drafting(const sched::StepPlan& plan,
                                          const LiveRequests& requests) const {
  std::vector<size_t> index;  // [n_inputs] position in plan.requests
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    if (sr.prefill || !sr.samples || sr.n_tokens != 1) continue;
    const LiveRequest& r = requests.at(sr.id);
    if (!r.speculate) continue;                                         // opted out
    if (r.tokens.empty() || r.tokens.back() != sr.tokens[0]) continue;  // not at its anchor
    if (r.sampler.params().max_tokens - static_cast<int32_t>(r.output().size()) < 2) continue;
    index.push_back(i);
  }
  return index;
}

void Speculation::plan(const sched::StepPlan& plan, LiveRequests& requests,
                       const sched::SchedulerStats& load, kv::BlockManager& kv,
                       std::vector<SpecWork>& work) {
  work.assign(plan.requests.size(), SpecWork{});
  step_ = StepRecord{};
  if (!drafter_) return;
  // Who would draft: decoding requests at their anchor with room for a draft and the bonus.
  const std::vector<size_t> index = drafting(plan, requests);
  if (index.empty()) return;
  // Every request the step serves or keeps waiting pays for a longer step.
  const int32_t served = static_cast<int32_t>(plan.requests.size()) + load.n_waiting;
  // A fixed depth drafts only as deep as it verifies.
  int32_t draft_depth = sc_.fixed_depth ? std::min(sc_.max_depth, *sc_.fixed_depth) : sc_.max_depth;
  if (!sc_.fixed_depth) {
    draft_depth = choose_depth(plan, requests, index, served, load);
    // The prediction said it pays; the measurement at this load may know better.
    if (draft_depth > 0 && guarded() && !payoff_.allows(served)) {
      ++refused_steps_;
      draft_depth = 0;
    }
  }
  if (draft_depth == 0) {  // drafting would cost more than it gains, or a fixed depth of 0
    drafter_->rest();
    return;
  }
  std::vector<spec::DraftInput> inputs;
  std::vector<size_t> at;                    // [n_inputs] position in plan.requests
  std::vector<std::vector<int32_t>> tables;  // [n_inputs] block tables, for feature drafters
  for (size_t i : index) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    const LiveRequest& r = requests.at(sr.id);
    // The bonus token always comes on top of the accepted drafts.
    const int32_t left = r.sampler.params().max_tokens - static_cast<int32_t>(r.output().size());
    spec::DraftInput in;
    in.id = sr.id;
    in.tokens = r.tokens;
    in.n_prompt = r.n_prompt;
    in.max_nodes = sc_.tree_budget;
    in.max_depth = std::min(draft_depth, left - 1);
    in.params = &r.sampler.params();
    if (!feature_layers_.empty()) {
      auto table = kv.block_table(sr.id);
      if (!table.ok()) continue;
      tables.push_back(std::move(table).value());
    }
    inputs.push_back(in);
    at.push_back(i);
  }
  if (inputs.empty()) return;
  for (size_t k = 0; k < tables.size(); ++k) inputs[k].block_table = tables[k];
  std::vector<spec::DraftTree> trees;
  const auto t_draft = Clock::now();
  if (!drafter_->propose(inputs, trees).ok() || trees.size() != inputs.size()) {
    return;  // a drafter failure costs speed, never correctness: decode plainly this step
  }
  // Drafts a request's grammar forbids never reach the forward (constraint.h says why this
  // keeps acceptance exact).
  for (size_t k = 0; k < inputs.size(); ++k) {
    LiveRequest& r = requests.at(inputs[k].id);
    if (!r.constraint) continue;
    if (!trees[k].check(vocab_).ok()) {
      trees[k].clear();  // admit_drafts would drop it too; the walk needs a well-formed tree
      continue;
    }
    cut_forbidden_drafts(*r.constraint, is_greedy(r.sampler.params()), trees[k]);
  }
  const double draft_seconds = std::chrono::duration<double>(Clock::now() - t_draft).count();
  draft_cost_->observe(static_cast<int32_t>(inputs.size()), draft_depth, draft_seconds);
  step_.drafted = true;
  step_.served = served;
  step_.base_tokens = plan.n_tokens;
  step_.draft_seconds = draft_seconds;
  admit_drafts(plan, served, draft_depth, inputs, at, trees, kv, work);
}

void Speculation::admit_drafts(const sched::StepPlan& plan, int32_t served, int32_t draft_depth,
                               const std::vector<spec::DraftInput>& inputs,
                               const std::vector<size_t>& at, std::vector<spec::DraftTree>& trees,
                               kv::BlockManager& kv, std::vector<SpecWork>& work) {
  spec::ControllerInput ci;
  ci.base_tokens = plan.n_tokens;
  ci.other_commits = std::max(0, served - static_cast<int32_t>(inputs.size()));
  ci.max_draft_tokens = std::max(0, max_num_batched_tokens_ - plan.n_tokens);
  ci.fixed_depth = sc_.fixed_depth;
  // Mean over requests of the best calibrated survival at each drafted depth: the forecast the
  // next steps' depth choice reads.
  std::vector<double> best_at(size_t(draft_depth), 0.0);
  for (spec::DraftTree& tree : trees) {
    if (!tree.check(vocab_).ok()) tree.clear();
    spec::Candidates c;
    c.parent = tree.parent;
    c.survival.resize(tree.tokens.size());
    for (int32_t k = 0; k < tree.size(); ++k) {
      const int32_t depth = tree.depth(k);
      const float own = calibrator_->calibrate(depth, tree.confidence[k]);
      c.survival[k] = (tree.parent[k] < 0 ? 1.0f : c.survival[tree.parent[k]]) * own;
      if (depth <= draft_depth) {
        best_at[size_t(depth - 1)] = std::max(best_at[size_t(depth - 1)], double(c.survival[k]));
      }
    }
    ci.requests.push_back(std::move(c));
  }
  for (int32_t d = 0; d < draft_depth; ++d) {
    const double mean = best_at[size_t(d)] / double(trees.size());
    forecast_[size_t(d)] += kForecastWeight * (mean - forecast_[size_t(d)]);
  }
  const spec::ControllerOutput admitted = spec::admit(ci, *sps_);

  double verified = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    SpecWork& w = work[at[k]];
    w.n_drafted = trees[k].size();
    if (k >= admitted.admitted.size()) continue;
    const std::vector<int32_t> keep = exact_subset(trees[k], admitted.admitted[k]);
    if (keep.empty()) continue;
    spec::DraftTree tree = trees[k].subset(keep);
    auto slots = kv.alloc_scratch(inputs[k].id, tree.size());
    if (!slots.ok()) continue;  // no KV for the drafts: this request decodes plainly
    w.tree = std::move(tree);
    w.slots = std::move(slots).value();
    verified += w.tree.size();
  }
  mean_depth_ += kDepthAverageWeight * (verified / double(inputs.size()) - mean_depth_);
}

void Speculation::observe_forward(int32_t n_tokens, double seconds) {
  // An unprofiled (flat) table stays flat.
  if (sps_ && sc_.profile) sps_->observe(n_tokens, seconds);
  step_.forward_seconds = seconds;
}

bool Speculation::guarded() const {
  // A fixed depth is the user's choice; an unprofiled (flat) SPS table cannot price plain steps.
  return !sc_.fixed_depth && sc_.profile && sps_ != nullptr;
}

void Speculation::end_step() {
  if (!step_.drafted || !guarded()) return;
  const double plain_seconds = sps_->latency(step_.base_tokens);
  const double seconds = step_.draft_seconds + step_.forward_seconds;
  if (plain_seconds <= 0.0 || seconds <= 0.0) return;
  payoff_.observe(step_.served, step_.served / plain_seconds,
                  double(step_.served + step_.accepted) / seconds);
  step_.drafted = false;
}

Status Speculation::commit_features(const ForwardBatch& batch, const ForwardOutput& out,
                                    std::span<const int32_t> rows, std::span<const int64_t> slots) {
  if (feature_layers_.empty()) return Status::Ok();
  const int64_t row_floats = int64_t(feature_layers_.size()) * d_model_;
  if (int64_t(out.hidden.size()) != int64_t(batch.tokens.size()) * row_floats) {
    return Error{"the forward captured no hidden states"};
  }
  std::vector<int32_t> positions(rows.size());
  std::vector<float> features(rows.size() * size_t(row_floats));  // [n, n_layers, d_model]
  for (size_t i = 0; i < rows.size(); ++i) {
    positions[i] = batch.positions[size_t(rows[i])];
    std::copy_n(out.hidden.data() + rows[i] * row_floats, row_floats,
                features.data() + int64_t(i) * row_floats);
  }
  return drafter_->commit_features(slots, positions, features);
}

const float* Speculation::processed_logits(LiveRequest& r, const SpecWork& w,
                                           const ForwardOutput& out, int32_t node,
                                           std::vector<float>& buffer) const {
  const int64_t vocab = vocab_;
  const float* logits = out.logits.data() + int64_t{w.anchor_row + 1 + node} * vocab;  // [vocab]
  const int64_t depth = node < 0 ? 0 : w.tree.depth(node);
  const SamplingParams& params = r.sampler.params();
  const bool processed =
      logits_processors_active(params, static_cast<int64_t>(r.output().size()) + depth);
  if (!processed && !r.constraint) return logits;
  // The drafted path from the anchor to the node: what the target would have seen after the
  // output so far.
  std::vector<int32_t> path;
  for (int32_t n = node; n >= 0; n = w.tree.parent[n]) path.push_back(w.tree.tokens[n]);
  std::reverse(path.begin(), path.end());
  // The grammar's mask first (the matcher walked along the path), then the processors.
  if (r.constraint) {
    logits = r.constraint->masked(logits, path, buffer);
  } else {
    buffer.assign(logits, logits + vocab);
  }
  if (!processed) return buffer.data();
  std::vector<int32_t> history(r.output().begin(), r.output().end());
  history.insert(history.end(), path.begin(), path.end());
  apply_logits_processors(params, TokenHistory{r.prompt(), history, eos_ids_}, buffer.data(),
                          vocab);
  return buffer.data();
}

spec::TargetDist Speculation::target_dist(LiveRequest& r, const SpecWork& w,
                                          const ForwardOutput& out,
                                          std::vector<std::vector<float>>& cache) const {
  return [this, &r, &w, &out, &cache](int32_t node) -> const std::vector<float>& {
    std::vector<float>& probs = cache[node + 1];
    if (!probs.empty()) return probs;
    std::vector<float> buffer;
    const float* adjusted = processed_logits(r, w, out, node, buffer);
    processed_distribution(r.sampler.params(), adjusted, vocab_, &probs);
    return probs;
  };
}

spec::TargetToken Speculation::target_token(LiveRequest& r, const SpecWork& w,
                                            const ForwardOutput& out) const {
  return [this, &r, &w, &out](int32_t node) -> int32_t {
    std::vector<float> buffer;
    const float* adjusted = processed_logits(r, w, out, node, buffer);
    // Every logit -inf: the processed distribution is uniform and its argmax the first id.
    return static_cast<int32_t>(std::max<int64_t>(greedy_token(adjusted, vocab_), 0));
  };
}

Produced Speculation::accept(LiveRequest& r, const SpecWork& w, const ForwardOutput& out) const {
  // Greedy needs only each node's argmax: no vocabulary-sized distribution per walked node.
  spec::Acceptance acc;
  if (is_greedy(r.sampler.params())) {
    acc = spec::accept_greedy(w.tree, target_token(r, w, out));
  } else {
    std::vector<std::vector<float>> cache(size_t(w.tree.size()) + 1);  // [nodes + 1][vocab]
    acc = spec::accept(w.tree, false, target_dist(r, w, out, cache),
                       [&r] { return r.sampler.uniform(); });
  }
  Produced p;
  int32_t row = w.anchor_row;
  for (int32_t node : acc.path) {
    p.tokens.push_back(w.tree.tokens[node]);
    p.rows.push_back(row);
    p.nodes.push_back(node);
    row = w.anchor_row + 1 + node;
  }
  p.tokens.push_back(acc.bonus);
  p.rows.push_back(row);
  return p;
}

Status Speculation::finish(LiveRequest& r, const SpecWork& w, const Produced& produced,
                           size_t n_keep, kv::BlockManager& kv, KvStorage& target_kv) {
  // The last kept token is the step's new token (KV not written); the drafts before it keep
  // the KV the verification wrote.
  const size_t n_kv = n_keep > 0 ? n_keep - 1 : 0;
  std::vector<int64_t> slots;
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < n_kv; ++i) {
    slots.push_back(w.slots[produced.nodes[i]]);
    tokens.push_back(produced.tokens[i]);
  }
  auto copies = kv.keep_path(r.id, slots, tokens);
  if (!copies.ok()) return Error{"speculation: " + copies.error().message};
  step_.accepted += static_cast<int64_t>(n_kv);
  // Only the target's rows move: a feature drafter gets the accepted drafts' rows at their
  // final slots from commit_features.
  for (const kv::SlotCopy& c : *copies) target_kv.copy_slots(c.from_slot, c.to_slot, 1);

  // Statistics per depth: a depth was verified when the walk reached a node with children
  // there (or the anchor), accepted when the path went through it.
  const size_t n_path = produced.nodes.size();
  const int32_t last = n_path > 0 ? produced.nodes.back() : -1;
  const bool tried_next =
      std::find(w.tree.parent.begin(), w.tree.parent.end(), last) != w.tree.parent.end();
  const size_t n_tried = std::min(n_path + (tried_next ? 1 : 0), size_t(sc_.max_depth));
  for (SpecStats* s : {&r.spec, &totals_}) {
    s->verified_at.resize(size_t(sc_.max_depth), 0);
    s->accepted_at.resize(size_t(sc_.max_depth), 0);
    s->n_rounds += 1;
    s->n_drafted += w.n_drafted;
    s->n_verified += w.tree.size();
    s->n_accepted += static_cast<int64_t>(n_kv);
    for (size_t d = 0; d < n_tried; ++d) {
      s->verified_at[d] += 1;
      if (d < n_path) s->accepted_at[d] += 1;
    }
  }
  recent_.observe(n_tried, std::min(n_path, n_tried));

  // Calibration sees the walked chain: the accepted drafts and, after a rejection, the first
  // child tried there.
  std::vector<float> raw;
  for (int32_t node : produced.nodes) raw.push_back(w.tree.confidence[node]);
  if (tried_next) {
    const auto it = std::find(w.tree.parent.begin(), w.tree.parent.end(), last);
    raw.push_back(w.tree.confidence[it - w.tree.parent.begin()]);
  }
  calibrator_->observe(raw, static_cast<int32_t>(n_path));
  return Status::Ok();
}

}  // namespace dspark::engine
