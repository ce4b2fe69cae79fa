// Speculation set-up: the drafter of the configured method, the calibrator, the SPS profile of
// the target and, for a draft model, its own latency profile; and what the engine reads of it
// between steps (statistics, the drafter's per-request state).
#include <algorithm>
#include <chrono>
#include <string>

#include "profile_cache.h"
#include "speculation.h"

namespace dspark::engine {

namespace {

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

}  // namespace

Speculation::Speculation(const EngineConfig& config, std::vector<int32_t> eos_ids)
    : sc_(config.spec),
      max_num_batched_tokens_(config.max_num_batched_tokens),
      max_num_seqs_(config.max_num_seqs),
      vocab_(config.model->config().vocab_size),
      d_model_(config.model->config().d_model),
      eos_ids_(std::move(eos_ids)) {}

Result<std::unique_ptr<Speculation>> Speculation::create(const EngineConfig& config,
                                                         std::vector<int32_t> eos_ids,
                                                         KvStorage& target_kv, Backend& backend) {
  std::unique_ptr<Speculation> spec(new Speculation(config, std::move(eos_ids)));
  Status st = spec->init(config, target_kv, backend);
  if (!st.ok()) return st.error();
  return spec;
}

Status Speculation::init(const EngineConfig& config, KvStorage& target_kv, Backend& backend) {
  const SpecConfig& sc = config.spec;
  if (sc.method == SpecMethod::kNone) return Status::Ok();
  if (sc.max_depth < 1 || sc.tree_budget < 1 || sc.draft_top_k < 1) {
    return Error{"engine: speculation needs max_depth, tree_budget and draft_top_k >= 1"};
  }
  if (sc.fixed_depth && *sc.fixed_depth < 0) return Error{"engine: negative spec fixed_depth"};
  if (sc.method == SpecMethod::kNgram) {
    drafter_ = spec::make_ngram_drafter(spec::NgramConfig{});
  } else if (sc.method == SpecMethod::kDSpark) {
    spec::DSparkDrafterConfig dc;
    dc.path = sc.dspark_checkpoint;
    dc.target_model = config.model.get();
    dc.kv_blocks = config.kv_blocks;
    dc.block_size = config.block_size;
    dc.max_requests = config.max_num_seqs;
    dc.backend = &backend;
    dc.quantize_layers = true;
    auto made = spec::make_dspark_drafter(dc);
    if (!made.ok()) return Error{"engine: dspark drafter: " + made.error().message};
    drafter_ = std::move(made).value();
    feature_layers_ = drafter_->feature_layers();
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
    dc.backend = &backend;
    auto made = spec::make_draft_model_drafter(dc);
    if (!made.ok()) return Error{"engine: draft model: " + made.error().message};
    drafter_ = std::move(made).value();
  }
  // A refit scans the whole history (tens of ms), so refit every ~1k rounds, not every step.
  calibrator_ = std::make_unique<spec::Calibrator>(sc.max_depth, kRefitEvery);
  // Optimistic until drafts say otherwise, so every depth gets tried.
  forecast_.assign(size_t(sc.max_depth), 1.0);
  draft_cost_ = std::make_unique<spec::DraftCostTable>(sc.max_depth);

  // SPS(B): measured on the real model where asked (or read from the profile cache), else flat
  // (every size equally fast, so the controller verifies as deep as the budget allows).
  std::vector<int32_t> sizes;
  const int64_t cap = std::min<int64_t>({config.max_num_batched_tokens, 64, target_kv.n_slots()});
  for (int32_t n : {1, 2, 4, 8, 12, 16, 24, 32, 48, 64}) {
    if (n <= cap) sizes.push_back(n);
  }
  if (!sc.profile) {
    sps_ = std::make_unique<spec::SpsTable>(sizes, std::vector<double>(sizes.size(), 1.0));
    return Status::Ok();
  }
  auto profile = cached_profile(sizes);
  if (!profile) {
    auto measured = measure_profile(config, target_kv, backend, sizes);
    if (!measured.ok()) return measured.error();
    profile = std::move(measured).value();
    // A cache that cannot be written costs the next start its profile, nothing else.
    if (!sc.profile_cache.empty()) (void)write_profile(sc.profile_cache, sc.profile_key, *profile);
  }
  sps_ = std::make_unique<spec::SpsTable>(profile->sizes, profile->target);
  if (!profile->draft.empty()) seed_draft_cost(profile->sizes, profile->draft);
  return Status::Ok();
}

std::optional<LatencyProfile> Speculation::cached_profile(const std::vector<int32_t>& sizes) const {
  if (sc_.profile_cache.empty() || sizes.empty()) return std::nullopt;
  auto p = read_profile(sc_.profile_cache, sc_.profile_key);
  if (!p) return std::nullopt;
  // Sizes this engine would not have profiled (a larger step budget then) are dropped.
  while (!p->sizes.empty() && p->sizes.back() > sizes.back()) {
    p->sizes.pop_back();
    p->target.pop_back();
    if (!p->draft.empty()) p->draft.pop_back();
  }
  const bool needs_draft = sc_.method == SpecMethod::kDraftModel;
  if (p->sizes.empty() || needs_draft != !p->draft.empty()) return std::nullopt;
  return p;
}

Result<LatencyProfile> Speculation::measure_profile(const EngineConfig& config,
                                                    KvStorage& target_kv, Backend& backend,
                                                    const std::vector<int32_t>& sizes) const {
  // A draft level forwards about top_k tokens per drafting request: the draft model is timed at
  // the same sizes, so the depth choice knows the drafter's cost before its first draft.
  std::unique_ptr<KvStorage> draft_kv;
  int32_t draft_head = 0;
  if (sc_.method == SpecMethod::kDraftModel) {
    const Model& draft = *sc_.draft_model;
    draft_kv =
        std::make_unique<KvStorage>(draft.config(), config.block_size,
                                    (sizes.back() + config.block_size - 1) / config.block_size);
    draft_head = static_cast<int32_t>(
        std::min<int64_t>(spec::DraftModelConfig{}.vocab_limit, draft.config().vocab_size));
  }
  LatencyProfile p;
  const auto start = std::chrono::steady_clock::now();
  for (int32_t n : sizes) {
    const double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (n > 4 && spent > sc_.profile_budget_seconds) break;  // the rest extrapolate
    auto t = time_forward(*config.model, target_kv, backend, n);
    if (!t.ok()) return Error{"engine: SPS profile: " + t.error().message};
    p.sizes.push_back(n);
    p.target.push_back(*t);
    if (draft_kv) {
      auto d = time_forward(*sc_.draft_model, *draft_kv, backend, n, draft_head);
      if (!d.ok()) return Error{"engine: draft model profile: " + d.error().message};
      p.draft.push_back(*d);
    }
  }
  return p;
}

void Speculation::seed_draft_cost(const std::vector<int32_t>& sizes,
                                  const std::vector<double>& seconds) {
  // Depth d for n requests costs d levels of n * top_k tokens (live steps then refine it).
  draft_level_ = std::make_unique<spec::SpsTable>(sizes, seconds);
  for (int32_t b = 0; b < spec::DraftCostTable::kBuckets; ++b) {
    const int32_t n_requests = int32_t{1} << b;
    for (int32_t d = 1; d <= sc_.max_depth; ++d) {
      draft_cost_->observe(n_requests, d, d * draft_level_->latency(n_requests * sc_.draft_top_k));
    }
  }
}

void Speculation::release(RequestId id) {
  if (drafter_) drafter_->release(id);
}

void Speculation::copy_slots(int64_t from_slot, int64_t to_slot, int64_t n) {
  if (drafter_) drafter_->copy_slots(from_slot, to_slot, n);
}

void Speculation::stop(const std::string& why) {
  stopped_ = why;  // the caller holds state_mu (step() runs under it)
  drafter_.reset();
  feature_layers_.clear();
}

void Speculation::fill_stats(EngineStats& s) const {
  s.spec = totals_;
  s.spec_mean_depth = mean_depth_;
  s.spec_stopped = stopped_;
  s.spec_calibration_ece = calibrator_ ? calibrator_->ece() : 0.0;
}

}  // namespace dspark::engine
