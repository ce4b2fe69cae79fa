// Speculative decoding inside the engine step: the drafter and controller set-up (with the SPS
// profile), drafting and admission for the step's decoding requests, acceptance over the
// verified tree and the KV commit of the accepted path.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "engine_impl.h"

namespace dspark::engine {

namespace {

constexpr double kDepthAverageWeight = 0.05;  // moving average of the verified depth
constexpr int32_t kRefitEvery = 1024;         // verified rounds between calibration refits
constexpr double kForecastWeight = 0.1;       // moving average of the survival forecast
constexpr double kFreeDraftShare = 0.01;      // drafting under this share of a step is free
constexpr int64_t kProbeRounds = 4;           // verified rounds before a catch-up under load

// Seconds of one forward over n tokens of one sequence written from slot 0 (all blocks are free
// at start-up), logits on every row (ids below logit_vocab, 0: all) as in a verification step or
// a draft level; the best of two runs.
Result<double> time_forward(const Model& model, KvStorage& storage, Backend& backend, int32_t n,
                            int32_t logit_vocab = 0) {
  ForwardBatch batch;
  batch.logit_vocab = logit_vocab;
  SeqRef seq;
  for (int32_t b = 0; b * storage.block_size() < n; ++b) seq.block_table.push_back(b);
  batch.seqs.push_back(seq);
  for (int32_t i = 0; i < n; ++i) batch.add_token(i % 64, i, 0, storage.block_size(), true);
  ForwardOutput out;
  double best = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    DSPARK_RETURN_IF_ERROR(model.forward(batch, storage, out, backend));
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

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

Status Engine::Impl::init_speculation() {
  const SpecConfig& sc = config.spec;
  if (sc.method == SpecMethod::kNone) return Status::Ok();
  if (sc.max_depth < 1 || sc.tree_budget < 1 || sc.draft_top_k < 1) {
    return Error{"engine: speculation needs max_depth, tree_budget and draft_top_k >= 1"};
  }
  if (sc.fixed_depth && *sc.fixed_depth < 0) return Error{"engine: negative spec fixed_depth"};
  if (sc.method == SpecMethod::kNgram) {
    drafter = spec::make_ngram_drafter(spec::NgramConfig{});
  } else if (sc.method == SpecMethod::kDSpark) {
    spec::DSparkDrafterConfig dc;
    dc.path = sc.dspark_checkpoint;
    dc.target_model = config.model.get();
    dc.kv_blocks = config.kv_blocks;
    dc.block_size = config.block_size;
    dc.max_requests = config.max_num_seqs;
    dc.backend = backend.get();
    dc.quantize_layers = true;
    auto made = spec::make_dspark_drafter(dc);
    if (!made.ok()) return Error{"engine: dspark drafter: " + made.error().message};
    drafter = std::move(made).value();
    feature_layers = drafter->feature_layers();
  } else {
    if (!sc.draft_model) return Error{"engine: --spec-method draft-model needs a draft model"};
    const int64_t dv = sc.draft_model->config().vocab_size;
    const int64_t tv = config.model->config().vocab_size;
    if (dv > tv) {
      return Error{"engine: the draft model's vocabulary (" + std::to_string(dv) +
                   ") is larger than the target's (" + std::to_string(tv) + ")"};
    }
    spec::DraftModelConfig dc;
    dc.model = sc.draft_model;
    dc.kv_blocks = sc.draft_kv_blocks > 0 ? sc.draft_kv_blocks : config.kv_blocks;
    dc.block_size = config.block_size;
    dc.top_k = sc.draft_top_k;
    dc.backend = backend.get();
    auto made = spec::make_draft_model_drafter(dc);
    if (!made.ok()) return Error{"engine: draft model: " + made.error().message};
    drafter = std::move(made).value();
  }
  // A refit scans the whole history (tens of ms), so refit every ~1k rounds, not every step.
  calibrator = std::make_unique<spec::Calibrator>(sc.max_depth, kRefitEvery);
  // Optimistic until drafts say otherwise, so every depth gets tried.
  spec_forecast.assign(size_t(sc.max_depth), 1.0);
  draft_cost = std::make_unique<spec::DraftCostTable>(sc.max_depth);

  // SPS(B): measured on the real model where asked, else flat (every size equally fast, so the
  // controller verifies as deep as the budget allows).
  std::vector<int32_t> sizes;
  const int64_t cap = std::min<int64_t>({config.max_num_batched_tokens, 64, storage->n_slots()});
  for (int32_t n : {1, 2, 4, 8, 12, 16, 24, 32, 48, 64}) {
    if (n <= cap) sizes.push_back(n);
  }
  std::vector<double> seconds(sizes.size(), 1.0);
  if (sc.profile) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto t = time_forward(*config.model, *storage, *backend, sizes[i]);
      if (!t.ok()) return Error{"engine: SPS profile: " + t.error().message};
      seconds[i] = *t;
    }
  }
  sps = std::make_unique<spec::SpsTable>(sizes, seconds);
  if (sc.method == SpecMethod::kDraftModel && sc.profile) {
    return profile_draft_model(sizes);
  }
  return Status::Ok();
}

Status Engine::Impl::profile_draft_model(const std::vector<int32_t>& sizes) {
  // A draft level forwards about top_k tokens per drafting request: time the draft model at the
  // SPS sizes and price depth d for n requests at d levels of n * top_k tokens, so the depth
  // choice knows the drafter's cost before its first draft (live steps then refine it).
  const SpecConfig& sc = config.spec;
  const Model& draft = *sc.draft_model;
  KvStorage scratch(draft.config(), config.block_size,
                    (sizes.back() + config.block_size - 1) / config.block_size);
  const auto head = static_cast<int32_t>(
      std::min<int64_t>(spec::DraftModelConfig{}.vocab_limit, draft.config().vocab_size));
  std::vector<double> seconds;
  for (int32_t n : sizes) {
    auto t = time_forward(draft, scratch, *backend, n, head);
    if (!t.ok()) return Error{"engine: draft model profile: " + t.error().message};
    seconds.push_back(*t);
  }
  draft_level = std::make_unique<spec::SpsTable>(sizes, seconds);
  for (int32_t b = 0; b < spec::DraftCostTable::kBuckets; ++b) {
    const int32_t n_requests = int32_t{1} << b;
    for (int32_t d = 1; d <= sc.max_depth; ++d) {
      draft_cost->observe(n_requests, d, d * draft_level->latency(n_requests * sc.draft_top_k));
    }
  }
  return Status::Ok();
}

double Engine::Impl::catch_up_seconds(const sched::StepPlan& plan,
                                      const std::vector<size_t>& index) const {
  if (!draft_level) return 0.0;
  // A drafting request always has up to max_depth + 1 new tokens (accepted drafts and the
  // bonus) to forward first; the drafter's measured time per step includes those, so only a
  // longer backlog (a prompt, tokens decoded without drafting) is a catch-up.
  const int64_t per_round = int64_t{config.spec.max_depth} + 1;
  int64_t pending = 0;
  for (size_t i : index) {
    const LiveRequest& r = requests.at(plan.requests[i].id);
    pending += std::max<int64_t>(
        0, drafter->pending_tokens(r.id, static_cast<int64_t>(r.tokens.size())) - per_round);
  }
  return pending > 0
             ? draft_level->latency(static_cast<int32_t>(std::min<int64_t>(pending, 1 << 30)))
             : 0.0;
}

int32_t Engine::Impl::choose_depth(const sched::StepPlan& plan, const std::vector<size_t>& index,
                                   int32_t served) {
  const SpecConfig& sc = config.spec;
  std::vector<double> cautious;     // [max_depth], only when a catch-up is to be judged
  std::vector<double> first_guess;  // [max_depth], before kProbeRounds rounds under load
  spec::DepthInput di;
  di.base_tokens = plan.n_tokens;
  di.base_commits = served;
  di.n_drafting = static_cast<int32_t>(index.size());
  di.max_depth = sc.max_depth;
  di.max_draft_tokens = std::max(0, config.max_num_batched_tokens - plan.n_tokens);
  di.survival = spec_forecast;
  if (spec_totals.n_rounds < kProbeRounds && served > 1) {
    // Before a few rounds are verified the forecast is only optimism: where other requests
    // would pay for a wrong guess, judge on the cautious estimate (the prior, shrunk toward
    // what was seen) and err toward plain decoding.
    first_guess =
        spec::cautious_survival(spec_forecast, spec_totals.verified_at, spec_totals.accepted_at);
    di.survival = first_guess;
  }
  di.free_draft_seconds = kFreeDraftShare * sps->latency(plan.n_tokens);
  if (draft_level) {
    double remaining = 0;
    for (size_t i : index) {
      const LiveRequest& r = requests.at(plan.requests[i].id);
      remaining += r.sampler.params().max_tokens - static_cast<double>(r.output().size());
    }
    di.catch_up_seconds = catch_up_seconds(plan, index);
    di.remaining_tokens = remaining / double(index.size());
    if (di.catch_up_seconds > 0.0) {
      const sched::SchedulerStats load = scheduler->stats();
      const int32_t coming = std::clamp(load.n_running + load.n_waiting, 1, config.max_num_seqs);
      // Until a few drafts have been verified the acceptance is a guess. A catch-up on a guess
      // is tried only where it is cheapest, on an otherwise idle server; after that it must
      // pay at the coming load.
      if (spec_totals.n_rounds < kProbeRounds) {
        if (coming > 1) return 0;
      } else {
        cautious = spec::cautious_survival(spec_forecast, spec_totals.verified_at,
                                           spec_totals.accepted_at);
        di.cautious_survival = cautious;
        di.coming_requests = coming;
      }
    }
  }
  return spec::choose_draft_depth(di, *sps, *draft_cost);
}

void Engine::Impl::plan_speculation(const sched::StepPlan& plan, std::vector<SpecWork>& work) {
  work.assign(plan.requests.size(), SpecWork{});
  if (!drafter) return;
  const SpecConfig& sc = config.spec;
  // Who would draft: decoding requests at their anchor with room for a draft and the bonus.
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
  if (index.empty()) return;
  // Every request the step serves or keeps waiting pays for a longer step.
  const int32_t served = static_cast<int32_t>(plan.requests.size()) + scheduler->stats().n_waiting;
  int32_t draft_depth = sc.max_depth;
  if (!sc.fixed_depth) {
    draft_depth = choose_depth(plan, index, served);
    if (draft_depth == 0) return;  // drafting would cost more than it gains
  }
  std::vector<spec::DraftInput> inputs;
  std::vector<size_t> at;                    // [n_inputs] position in plan.requests
  std::vector<std::vector<int32_t>> tables;  // [n_inputs] block tables, for feature drafters
  for (size_t i : index) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    LiveRequest& r = requests.at(sr.id);
    // The bonus token always comes on top of the accepted drafts.
    const int32_t left = r.sampler.params().max_tokens - static_cast<int32_t>(r.output().size());
    spec::DraftInput in;
    in.id = sr.id;
    in.tokens = r.tokens;
    in.n_prompt = r.n_prompt;
    in.max_nodes = sc.tree_budget;
    in.max_depth = std::min(draft_depth, left - 1);
    in.params = &r.sampler.params();
    if (!feature_layers.empty()) {
      auto table = kv->block_table(sr.id);
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
  if (!drafter->propose(inputs, trees).ok() || trees.size() != inputs.size()) {
    return;  // a drafter failure costs speed, never correctness: decode plainly this step
  }
  draft_cost->observe(static_cast<int32_t>(inputs.size()), draft_depth,
                      std::chrono::duration<double>(Clock::now() - t_draft).count());

  const int64_t vocab = config.model->config().vocab_size;
  spec::ControllerInput ci;
  ci.base_tokens = plan.n_tokens;
  ci.other_commits = std::max(0, served - static_cast<int32_t>(inputs.size()));
  ci.max_draft_tokens = std::max(0, config.max_num_batched_tokens - plan.n_tokens);
  ci.fixed_depth = sc.fixed_depth;
  // Mean over requests of the best calibrated survival at each drafted depth: the forecast the
  // next steps' depth choice reads.
  std::vector<double> best_at(size_t(draft_depth), 0.0);
  for (spec::DraftTree& tree : trees) {
    if (!tree.check(vocab).ok()) tree.clear();
    spec::Candidates c;
    c.parent = tree.parent;
    c.survival.resize(tree.tokens.size());
    for (int32_t k = 0; k < tree.size(); ++k) {
      const int32_t depth = tree.depth(k);
      const float own = calibrator->calibrate(depth, tree.confidence[k]);
      c.survival[k] = (tree.parent[k] < 0 ? 1.0f : c.survival[tree.parent[k]]) * own;
      if (depth <= draft_depth) {
        best_at[size_t(depth - 1)] = std::max(best_at[size_t(depth - 1)], double(c.survival[k]));
      }
    }
    ci.requests.push_back(std::move(c));
  }
  for (int32_t d = 0; d < draft_depth; ++d) {
    const double mean = best_at[size_t(d)] / double(trees.size());
    spec_forecast[size_t(d)] += kForecastWeight * (mean - spec_forecast[size_t(d)]);
  }
  const spec::ControllerOutput admitted = spec::admit(ci, *sps);

  double verified = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    SpecWork& w = work[at[k]];
    w.n_drafted = trees[k].size();
    if (k >= admitted.admitted.size()) continue;
    const std::vector<int32_t> keep = exact_subset(trees[k], admitted.admitted[k]);
    if (keep.empty()) continue;
    spec::DraftTree tree = trees[k].subset(keep);
    auto slots = kv->alloc_scratch(inputs[k].id, tree.size());
    if (!slots.ok()) continue;  // no KV for the drafts: this request decodes plainly
    w.tree = std::move(tree);
    w.slots = std::move(slots).value();
    verified += w.tree.size();
  }
  spec_mean_depth += kDepthAverageWeight * (verified / double(inputs.size()) - spec_mean_depth);
}

void Engine::Impl::stop_speculation(const std::string& why) {
  spec_stopped = why;  // the caller holds state_mu (step() runs under it)
  drafter.reset();
  feature_layers.clear();
}

Status Engine::Impl::commit_features(const ForwardBatch& batch, const ForwardOutput& out,
                                     std::span<const int32_t> rows,
                                     std::span<const int64_t> slots) {
  const int64_t row_floats = int64_t(feature_layers.size()) * config.model->config().d_model;
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
  return drafter->commit_features(slots, positions, features);
}

const float* Engine::Impl::processed_logits(const LiveRequest& r, const SpecWork& w,
                                            const ForwardOutput& out, int32_t node,
                                            std::vector<float>& buffer) const {
  const int64_t vocab = config.model->config().vocab_size;
  const float* logits = out.logits.data() + int64_t{w.anchor_row + 1 + node} * vocab;  // [vocab]
  const int64_t depth = node < 0 ? 0 : w.tree.depth(node);
  const SamplingParams& params = r.sampler.params();
  if (!logits_processors_active(params, static_cast<int64_t>(r.output().size()) + depth)) {
    return logits;
  }
  // The history the target would have seen: the output so far plus the path to the node.
  std::vector<int32_t> history(r.output().begin(), r.output().end());
  const size_t n_output = history.size();
  for (int32_t n = node; n >= 0; n = w.tree.parent[n]) history.push_back(w.tree.tokens[n]);
  std::reverse(history.begin() + std::ptrdiff_t(n_output), history.end());
  buffer.assign(logits, logits + vocab);
  apply_logits_processors(params, TokenHistory{r.prompt(), history, eos_ids}, buffer.data(), vocab);
  return buffer.data();
}

spec::TargetDist Engine::Impl::target_dist(LiveRequest& r, const SpecWork& w,
                                           const ForwardOutput& out,
                                           std::vector<std::vector<float>>& cache) {
  return [this, &r, &w, &out, &cache](int32_t node) -> const std::vector<float>& {
    std::vector<float>& probs = cache[node + 1];
    if (!probs.empty()) return probs;
    std::vector<float> buffer;
    const float* adjusted = processed_logits(r, w, out, node, buffer);
    processed_distribution(r.sampler.params(), adjusted, config.model->config().vocab_size, &probs);
    return probs;
  };
}

spec::TargetToken Engine::Impl::target_token(const LiveRequest& r, const SpecWork& w,
                                             const ForwardOutput& out) const {
  return [this, &r, &w, &out](int32_t node) -> int32_t {
    std::vector<float> buffer;
    const float* adjusted = processed_logits(r, w, out, node, buffer);
    // Every logit -inf: the processed distribution is uniform and its argmax the first id.
    return static_cast<int32_t>(
        std::max<int64_t>(greedy_token(adjusted, config.model->config().vocab_size), 0));
  };
}

Produced Engine::Impl::accept_speculation(LiveRequest& r, const SpecWork& w,
                                          const ForwardOutput& out) {
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

Status Engine::Impl::finish_speculation(LiveRequest& r, const SpecWork& w, const Produced& produced,
                                        size_t n_keep) {
  // The last kept token is the step's new token (KV not written); the drafts before it keep
  // the KV the verification wrote.
  const size_t n_kv = n_keep > 0 ? n_keep - 1 : 0;
  std::vector<int64_t> slots;
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < n_kv; ++i) {
    slots.push_back(w.slots[produced.nodes[i]]);
    tokens.push_back(produced.tokens[i]);
  }
  auto copies = kv->keep_path(r.id, slots, tokens);
  if (!copies.ok()) return Error{"speculation: " + copies.error().message};
  // Only the target's rows move: a feature drafter gets the accepted drafts' rows at their
  // final slots from commit_features.
  for (const kv::SlotCopy& c : *copies) storage->copy_slots(c.from_slot, c.to_slot, 1);

  // Statistics per depth: a depth was verified when the walk reached a node with children
  // there (or the anchor), accepted when the path went through it.
  const size_t n_path = produced.nodes.size();
  const int32_t last = n_path > 0 ? produced.nodes.back() : -1;
  const bool tried_next =
      std::find(w.tree.parent.begin(), w.tree.parent.end(), last) != w.tree.parent.end();
  const size_t n_tried = std::min(n_path + (tried_next ? 1 : 0), size_t(config.spec.max_depth));
  for (SpecStats* s : {&r.spec, &spec_totals}) {
    s->verified_at.resize(size_t(config.spec.max_depth), 0);
    s->accepted_at.resize(size_t(config.spec.max_depth), 0);
    s->n_rounds += 1;
    s->n_drafted += w.n_drafted;
    s->n_verified += w.tree.size();
    s->n_accepted += static_cast<int64_t>(n_kv);
    for (size_t d = 0; d < n_tried; ++d) {
      s->verified_at[d] += 1;
      if (d < n_path) s->accepted_at[d] += 1;
    }
  }

  // Calibration sees the walked chain: the accepted drafts and, after a rejection, the first
  // child tried there.
  std::vector<float> raw;
  for (int32_t node : produced.nodes) raw.push_back(w.tree.confidence[node]);
  if (tried_next) {
    const auto it = std::find(w.tree.parent.begin(), w.tree.parent.end(), last);
    raw.push_back(w.tree.confidence[it - w.tree.parent.begin()]);
  }
  calibrator->observe(raw, static_cast<int32_t>(n_path));
  return Status::Ok();
}

}  // namespace dspark::engine
