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
// a draft level; the best of `runs`.
Result<double> time_forward(const Model& model, KvStorage& storage, Backend& backend, int32_t n,
                            int32_t logit_vocab, int runs) {
  ForwardBatch batch;
  batch.logit_vocab = logit_vocab;
  SeqRef seq;
  for (int32_t b = 0; b * storage.block_size() < n; ++b) seq.block_table.push_back(b);
  batch.seqs.push_back(seq);
  for (int32_t i = 0; i < n; ++i) batch.add_token(i % 64, i, 0, storage.block_size(), true);
  ForwardOutput out;
  double best = 1e30;
  for (int rep = 0; rep < runs; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    DSPARK_RETURN_IF_ERROR(model.forward(batch, storage, out, backend));
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Step latency at each of sizes (ascending, sizes[0] == 1), profiled at start-up where every
// second is the user's: the sizes profile_cache.h says this start must time (all of them
// without a cache file, cache_path empty or not), from the largest down, each once (on a cold
// start the largest twice: its first run grows the scratch buffers); then the averaged ratios of
// the cache at this start's one-token latency, no size below a smaller one's (one sample is noisy,
// and the controller must never see a larger step as cheaper). Live steps then rescale the
// table to the machine's speed. A cache that cannot be read or written is re-profiled or left
// as it was: it only saves time.
Result<std::vector<double>> profile_sizes(const Model& model, KvStorage& storage, Backend& backend,
                                          const std::vector<int32_t>& sizes, int32_t logit_vocab,
                                          const std::string& cache_path) {
  ProfileRecord record;
  if (!cache_path.empty()) {
    auto cached = read_profile(cache_path);
    if (cached.ok()) record = std::move(cached).value();
  }
  const std::vector<bool> timed = sizes_to_time(record, sizes);  // [n_sizes]
  std::vector<double> seconds(sizes.size(), 0.0);                // [n_sizes]
  // A warm start times 3 sizes once each: a second run of its largest would double its cost.
  bool warmed = std::count(timed.begin(), timed.end(), true) < std::ssize(timed);
  for (size_t i = sizes.size(); i-- > 0;) {
    if (!timed[i]) continue;
    auto t = time_forward(model, storage, backend, sizes[i], logit_vocab, warmed ? 1 : 2);
    if (!t.ok()) return t.error();
    seconds[i] = *t;
    warmed = true;
  }
  fold_profile(record, sizes, seconds);
  if (!cache_path.empty()) (void)write_profile(cache_path, record);
  return profile_latencies(record, seconds[0]);
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

  // SPS(B): measured on the real model where asked, else flat (every size equally fast, so the
  // controller verifies as deep as the budget allows).
  std::vector<int32_t> sizes;
  const int64_t cap = std::min<int64_t>({config.max_num_batched_tokens, 64, target_kv.n_slots()});
  // Powers of two: a verify step's cost grows about linearly past a few tokens, so the
  // interpolation between them loses little, and start-up forwards 127 tokens plus a warm-up.
  for (int32_t n : {1, 2, 4, 8, 16, 32, 64}) {
    if (n <= cap) sizes.push_back(n);
  }
  std::vector<double> seconds(sizes.size(), 1.0);
  if (sc.profile) {
    auto t = profile_sizes(*config.model, target_kv, backend, sizes, 0,
                           sc.profile_cache.empty() ? "" : sc.profile_cache + ".target");
    if (!t.ok()) return Error{"engine: SPS profile: " + t.error().message};
    seconds = std::move(t).value();
  }
  sps_ = std::make_unique<spec::SpsTable>(sizes, seconds);
  if (sc.method == SpecMethod::kDraftModel && sc.profile) {
    return profile_draft_model(sizes, config.block_size, backend);
  }
  return Status::Ok();
}

Status Speculation::profile_draft_model(const std::vector<int32_t>& sizes, int32_t block_size,
                                        Backend& backend) {
  // A draft level forwards about top_k tokens per drafting request: time the draft model at the
  // SPS sizes and price depth d for n requests at d levels of n * top_k tokens, so the depth
  // choice knows the drafter's cost before its first draft (live steps then refine it).
  const Model& draft = *sc_.draft_model;
  KvStorage scratch(draft.config(), block_size, (sizes.back() + block_size - 1) / block_size);
  const auto head = static_cast<int32_t>(
      std::min<int64_t>(spec::DraftModelConfig{}.vocab_limit, draft.config().vocab_size));
  auto seconds = profile_sizes(draft, scratch, backend, sizes, head,
                               sc_.profile_cache.empty() ? "" : sc_.profile_cache + ".draft");
  if (!seconds.ok()) return Error{"engine: draft model profile: " + seconds.error().message};
  draft_level_ = std::make_unique<spec::SpsTable>(sizes, std::move(seconds).value());
  for (int32_t b = 0; b < spec::DraftCostTable::kBuckets; ++b) {
    const int32_t n_requests = int32_t{1} << b;
    for (int32_t d = 1; d <= sc_.max_depth; ++d) {
      draft_cost_->observe(n_requests, d, d * draft_level_->latency(n_requests * sc_.draft_top_k));
    }
  }
  return Status::Ok();
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
  s.spec_refused_steps = refused_steps_;
}

}  // namespace dspark::engine
