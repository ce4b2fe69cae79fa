// One engine step: schedule, copy-on-write block copies, drafts and admission, one forward for
// every scheduled request, sampling and acceptance, stop checks and streaming, commit (the
// accepted drafts' KV, a feature drafter's features), scheduler update. What is speculative
// happens in Speculation (speculation.h); the step calls it at each stage.
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
      // Under a grammar: the distribution the token was drawn from, the allowed tokens only.
      if (r.constraint) logits = r.constraint->masked(logits, {}, r.masked);
      e.logprobs.push_back(compute_logprobs(logits, vocab, token, params.top_logprobs));
    }
    FinishChecker::Step check = r.checker.on_token(token, r.detok.push(token));
    e.text += check.text;
    if (check.finish) r.finish = *check.finish;
    if (r.constraint && !r.finish) {
      if (!r.constraint->accept(token)) {
        // Only where the sampling parameters left no allowed token (min_tokens holding back
        // the EOS that was all the grammar allowed; the server refuses that combination): the
        // request ends with an error, this token last.
        r.finish = FinishReason::kError;
        r.finish_message = "the grammar allows no token the sampling parameters allow";
      } else if (r.constraint->terminated()) {
        r.finish = FinishReason::kStop;  // the grammar has ended: nothing may follow
      }
    }
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
  spec->copy_slots(from_slot, to_slot, n);
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
  for (RequestId id : plan.preempted) spec->release(id);
  if (plan.requests.empty()) return;  // nothing to run; such a plan needs no update()
  ++n_steps;
  // An error after scheduling fails every request and still closes the plan.
  auto abandon = [&](const std::string& why) {
    fail_all(why);
    (void)scheduler->update(plan, {});
  };

  Status copied = copy_blocks(plan);
  if (!copied.ok()) return abandon(copied.message());
  std::vector<SpecWork> work;  // [n_requests]
  spec->plan(plan, requests, scheduler->stats(), *kv, work);
  StepBatch sb;
  Status built = build_batch(plan, work, sb);
  if (!built.ok()) return abandon(built.message());

  const auto t_forward = Clock::now();
  Status st = config.model->forward(sb.batch, *storage, forward_out, *backend);
  if (!st.ok()) return abandon("forward: " + st.message());
  spec->observe_forward(static_cast<int32_t>(sb.batch.tokens.size()),
                        std::chrono::duration<double>(Clock::now() - t_forward).count());

  const std::vector<Produced> produced = sample_and_accept(plan, work, sb);
  auto sampled = commit(plan, work, produced, sb);
  if (!sampled.ok()) return abandon(sampled.error().message);
  Status fed = spec->commit_features(sb.batch, forward_out, sb.commit_rows, sb.commit_slots);
  if (!fed.ok()) spec->stop("the drafter could not take the target features: " + fed.message());
  spec->end_step();
  auto finished = scheduler->update(plan, sampled.value());
  if (!finished.ok()) {
    fail_all("scheduler update: " + finished.error().message);
    return;
  }
  for (const sched::FinishedRequest& f : finished.value()) {
    auto it = requests.find(f.id);
    if (it == requests.end()) continue;
    LiveRequest& r = it->second;
    const FinishReason reason = r.finish ? *r.finish : f.reason;
    finish(r, reason, r.finish_message.empty() ? f.message : r.finish_message, std::move(r.tail));
  }
}

Status Engine::Impl::copy_blocks(const sched::StepPlan& plan) {
  for (const kv::BlockCopy& c : plan.copies) {
    if (c.from_block < 0 || c.to_block < 0 || c.from_block >= storage->n_blocks() ||
        c.to_block >= storage->n_blocks()) {
      return Error{"engine: block copy outside the KV storage"};
    }
    const int64_t bs = storage->block_size();
    copy_kv(c.from_block * bs, c.to_block * bs, bs);
  }
  return Status::Ok();
}

std::vector<Produced> Engine::Impl::sample_and_accept(const sched::StepPlan& plan,
                                                      const std::vector<SpecWork>& work,
                                                      const StepBatch& sb) {
  const ForwardOutput& out = forward_out;
  const int64_t vocab = config.model->config().vocab_size;
  // In parallel: each request's sampler (its generator and buffers) and history are its own,
  // so every request draws what a serial loop would, and a step of many requests does not pass
  // their vocabulary-sized rows one by one on this thread.
  std::vector<LiveRequest*> sampling(plan.requests.size(), nullptr);  // [n_requests]
  std::vector<Produced> produced(plan.requests.size());               // [n_requests]
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    if (plan.requests[i].samples) sampling[i] = &requests.at(plan.requests[i].id);
  }
  backend->host_parallel(static_cast<int64_t>(sampling.size()), [&](int64_t i, int) {
    LiveRequest* r = sampling[size_t(i)];
    if (r == nullptr) return;
    Produced& p = produced[size_t(i)];
    if (work[size_t(i)].tree.size() > 0) {
      p = spec->accept(*r, work[size_t(i)], out);
      return;
    }
    const int32_t row = sb.sample_row[size_t(i)];
    const float* logits = out.logits.data() + int64_t{row} * vocab;  // [vocab]
    if (r->constraint) logits = r->constraint->masked(logits, {}, r->masked);
    p.tokens.push_back(
        r->sampler.sample(logits, vocab, TokenHistory{r->prompt(), r->output(), eos_ids}));
    p.rows.push_back(row);
  });
  return produced;
}

Result<std::vector<sched::SampledToken>> Engine::Impl::commit(const sched::StepPlan& plan,
                                                              const std::vector<SpecWork>& work,
                                                              const std::vector<Produced>& produced,
                                                              StepBatch& sb) {
  std::vector<sched::SampledToken> sampled;
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const sched::ScheduledRequest& sr = plan.requests[i];
    if (!sr.samples) continue;
    LiveRequest& r = requests.at(sr.id);
    const Produced& p = produced[i];
    const size_t kept = emit(r, p, forward_out);
    if (work[i].tree.size() > 0) {
      Status done = spec->finish(r, work[i], p, kept, *kv, *storage);
      if (!done.ok()) return Error{"engine: " + done.message()};
      if (!spec->feature_layers().empty() && kept > 1) {
        // The accepted drafts now sit at the positions after the anchor.
        auto table = kv->block_table(r.id);
        const int32_t bs = config.block_size;
        for (size_t k = 0; table.ok() && k + 1 < kept; ++k) {
          const int32_t pos = sr.first_position + 1 + static_cast<int32_t>(k);
          sb.commit_rows.push_back(work[i].node_base + p.nodes[k]);
          sb.commit_slots.push_back(int64_t{(*table)[size_t(pos / bs)]} * bs + pos % bs);
        }
      }
    }
    // A stop, or a grammar error, ends the request now; a length finish the scheduler knows.
    const bool stop = r.finish == FinishReason::kStop || r.finish == FinishReason::kError;
    sched::SampledToken token{sr.id, p.tokens[kept - 1], stop, {}};
    token.accepted.assign(p.tokens.begin(), p.tokens.begin() + (kept - 1));
    sampled.push_back(std::move(token));
  }
  return sampled;
}

}  // namespace dspark::engine
