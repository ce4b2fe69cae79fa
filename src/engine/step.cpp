// One engine step: schedule, copy-on-write block copies, one forward for every scheduled
// request, per-request sampling and stop checks, streaming, scheduler update.
#include <algorithm>

#include "engine_impl.h"

namespace dspark::engine {

size_t Engine::Impl::emit(LiveRequest& r, const Produced& produced, const ForwardOutput& out) {
  const int64_t vocab = config.model->config().vocab_size;
  const SamplingParams& params = r.sampler.params();
  const auto now = Clock::now();
  if (r.output().empty()) r.first_token = now;
  r.last_token = now;
  Event e;
  size_t kept = 0;
  for (size_t i = 0; i < produced.tokens.size() && !r.finish; ++i) {
    const int32_t token = produced.tokens[i];
    r.tokens.push_back(token);
    ++kept;
    e.tokens.push_back(token);
    if (params.logprobs) {
      const float* logits = out.logits.data() + int64_t{produced.rows[i]} * vocab;  // [vocab]
      e.logprobs.push_back(compute_logprobs(logits, vocab, token, params.top_logprobs));
    }
    FinishChecker::Step check = r.checker.on_token(token, r.detok.push(token));
    e.text += check.text;
    if (check.finish) r.finish = *check.finish;
  }
  n_generated_tokens += static_cast<int64_t>(kept);
  if (r.finish) {
    if (*r.finish == FinishReason::kLength) e.text += r.detok.flush();
    r.tail = std::move(e);
  } else {
    r.stream->push(std::move(e));
  }
  return kept;
}

void Engine::Impl::copy_kv(int64_t from_slot, int64_t to_slot, int64_t n) {
  storage->copy_slots(from_slot, to_slot, n);
  if (drafter) drafter->copy_slots(from_slot, to_slot, n);
}

void Engine::Impl::step() {
  auto planned = scheduler->schedule();
  if (!planned.ok()) {
    fail_all("scheduler: " + planned.error().message);
    return;
  }
  sched::StepPlan& plan = planned.value();
  for (const sched::FinishedRequest& f : plan.finished) {
    auto it = requests.find(f.id);
    if (it != requests.end()) finish(it->second, f.reason, f.message, Event{});
  }
  if (drafter) {
    for (RequestId id : plan.preempted) drafter->release(id);
  }
  if (plan.requests.empty()) return;  // nothing to run; such a plan needs no update()
  ++n_steps;

  for (const kv::BlockCopy& c : plan.copies) {
    if (c.from_block < 0 || c.to_block < 0 || c.from_block >= storage->n_blocks() ||
        c.to_block >= storage->n_blocks()) {
      fail_all("engine: block copy outside the KV storage");
      (void)scheduler->update(plan, {});
      return;
    }
    const int64_t bs = storage->block_size();
    copy_kv(c.from_block * bs, c.to_block * bs, bs);
  }

  std::vector<SpecWork> work;
  plan_speculation(plan, work);
  const bool trees =
      std::any_of(work.begin(), work.end(), [](const SpecWork& w) { return w.tree.size() > 0; });

  const auto now = Clock::now();
  ForwardBatch batch;
  batch.capture_layers = feature_layers;
  std::vector<int32_t> sample_row(plan.requests.size(), -1);  // logits row of each sampler
  // Tokens whose K/V this step commits (a feature drafter gets their hidden states): batch
  // rows and the target slots where their K/V ends up.
  std::vector<int32_t> commit_rows;
  std::vector<int64_t> commit_slots;
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    auto table = kv->block_table(sr.id);
    auto it = requests.find(sr.id);
    if (!table.ok() || it == requests.end()) {
      fail_all("engine: scheduled request " + std::to_string(sr.id) + " has no KV or state");
      (void)scheduler->update(plan, {});
      return;
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
      if (last) sample_row[i] = static_cast<int32_t>(batch.logit_rows.size());
      batch.add_token(sr.tokens[t], sr.first_position + t, s, config.block_size, last);
      commit_rows.push_back(static_cast<int32_t>(batch.tokens.size()) - 1);
      commit_slots.push_back(batch.kv_slots.back());
      if (trees) {  // causal within the chunk, spelled out since other tokens use lists
        std::vector<int32_t>& a = batch.attend.emplace_back();
        for (int32_t j = start; j < start + t; ++j) a.push_back(j);
      }
    }
    SpecWork& w = work[i];
    if (w.tree.size() == 0) continue;
    // The anchor is this request's single token; each node sees it and its ancestors.
    w.anchor_row = sample_row[i];
    w.node_base = static_cast<int32_t>(batch.tokens.size());
    for (int32_t k = 0; k < w.tree.size(); ++k) {
      std::vector<int32_t> ancestors;
      for (int32_t n = w.tree.parent[k]; n >= 0; n = w.tree.parent[n]) {
        ancestors.push_back(start + 1 + n);
      }
      ancestors.push_back(start);
      std::reverse(ancestors.begin(), ancestors.end());
      batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size()));
      batch.tokens.push_back(w.tree.tokens[k]);
      batch.positions.push_back(sr.first_position + w.tree.depth(k));
      batch.seq.push_back(s);
      batch.kv_slots.push_back(static_cast<int32_t>(w.slots[k]));
      batch.attend.push_back(std::move(ancestors));
    }
  }
  n_forward_tokens += static_cast<int64_t>(batch.tokens.size());

  ForwardOutput& out = forward_out;
  const auto t_forward = Clock::now();
  Status st = config.model->forward(batch, *storage, out, *backend);
  if (!st.ok()) {
    fail_all("forward: " + st.message());
    (void)scheduler->update(plan, {});
    return;
  }
  if (sps && config.spec.profile) {  // an unprofiled (flat) table stays flat
    sps->observe(static_cast<int32_t>(batch.tokens.size()),
                 std::chrono::duration<double>(Clock::now() - t_forward).count());
  }

  const int64_t vocab = config.model->config().vocab_size;
  // Samples and acceptance first, in parallel: each request's sampler (its generator and
  // buffers) and history are its own, so every request draws what a serial loop would, and a
  // step of many requests does not pass their vocabulary-sized rows one by one on this thread.
  std::vector<LiveRequest*> sampling(plan.requests.size(), nullptr);  // [n_requests]
  std::vector<Produced> produced_by(plan.requests.size());            // [n_requests]
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    if (plan.requests[i].samples) sampling[i] = &requests.at(plan.requests[i].id);
  }
  backend->host_parallel(static_cast<int64_t>(sampling.size()), [&](int64_t i, int) {
    LiveRequest* r = sampling[size_t(i)];
    if (r == nullptr) return;
    Produced& p = produced_by[size_t(i)];
    if (work[size_t(i)].tree.size() > 0) {
      p = accept_speculation(*r, work[size_t(i)], out);
      return;
    }
    const float* logits = out.logits.data() + int64_t{sample_row[size_t(i)]} * vocab;  // [vocab]
    p.tokens.push_back(
        r->sampler.sample(logits, vocab, TokenHistory{r->prompt(), r->output(), eos_ids}));
    p.rows.push_back(sample_row[size_t(i)]);
  });
  std::vector<sched::SampledToken> sampled;
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    if (!sr.samples) continue;
    LiveRequest& r = *sampling[i];
    const Produced& produced = produced_by[i];
    const size_t kept = emit(r, produced, out);
    if (work[i].tree.size() > 0) {
      Status done = finish_speculation(r, work[i], produced, kept);
      if (!done.ok()) {
        fail_all("engine: " + done.message());
        (void)scheduler->update(plan, {});
        return;
      }
      if (!feature_layers.empty() && kept > 1) {
        // The accepted drafts now sit at the positions after the anchor.
        auto table = kv->block_table(r.id);
        const int32_t bs = config.block_size;
        for (size_t k = 0; table.ok() && k + 1 < kept; ++k) {
          const int32_t pos = sr.first_position + 1 + static_cast<int32_t>(k);
          commit_rows.push_back(work[i].node_base + produced.nodes[k]);
          commit_slots.push_back(int64_t{(*table)[size_t(pos / bs)]} * bs + pos % bs);
        }
      }
    }
    sched::SampledToken token{
        sr.id, produced.tokens[kept - 1], r.finish == FinishReason::kStop, {}};
    token.accepted.assign(produced.tokens.begin(), produced.tokens.begin() + (kept - 1));
    sampled.push_back(std::move(token));
  }

  if (!feature_layers.empty()) {
    Status fed = commit_features(batch, out, commit_rows, commit_slots);
    if (!fed.ok())
      stop_speculation("the drafter could not take the target features: " + fed.message());
  }
  auto finished = scheduler->update(plan, sampled);
  if (!finished.ok()) {
    fail_all("scheduler update: " + finished.error().message);
    return;
  }
  for (const sched::FinishedRequest& f : finished.value()) {
    auto it = requests.find(f.id);
    if (it == requests.end()) continue;
    LiveRequest& r = it->second;
    const FinishReason reason = r.finish ? *r.finish : f.reason;
    finish(r, reason, f.message, std::move(r.tail));
  }
}

}  // namespace dspark::engine
