// One engine step: schedule, copy-on-write block copies, one forward for every scheduled
// request, per-request sampling and stop checks, streaming, scheduler update.
#include <cstring>

#include "engine_impl.h"

namespace dspark::engine {

namespace {

// Copies every row of a block, K and V of every layer.
void copy_block(KvStorage& kv, const kv::BlockCopy& c) {
  const int64_t rows = kv.block_size();
  const int64_t elems = rows * kv.row_elems();
  for (int l = 0; l < kv.n_layers(); ++l) {
    std::memcpy(kv.k(l) + c.to_block * elems, kv.k(l) + c.from_block * elems,
                elems * sizeof(uint16_t));
    std::memcpy(kv.v(l) + c.to_block * elems, kv.v(l) + c.from_block * elems,
                elems * sizeof(uint16_t));
  }
}

FinishReason from_sample(dspark::FinishReason r) {
  return r == dspark::FinishReason::kStop ? FinishReason::kStop : FinishReason::kLength;
}

FinishReason from_sched(sched::FinishReason r) {
  switch (r) {
    case sched::FinishReason::kStop:
      return FinishReason::kStop;
    case sched::FinishReason::kLength:
      return FinishReason::kLength;
    case sched::FinishReason::kAborted:
      return FinishReason::kAbort;
    case sched::FinishReason::kError:
      return FinishReason::kError;
  }
  return FinishReason::kError;
}

}  // namespace

void Engine::Impl::step() {
  auto planned = scheduler->schedule();
  if (!planned.ok()) {
    fail_all("scheduler: " + planned.error().message);
    return;
  }
  sched::StepPlan& plan = planned.value();
  for (const sched::FinishedRequest& f : plan.finished) {
    auto it = requests.find(f.id);
    if (it != requests.end()) finish(it->second, from_sched(f.reason), f.message, Event{});
  }
  if (plan.requests.empty()) return;  // nothing to run; such a plan needs no update()
  ++n_steps;
  n_forward_tokens += plan.n_tokens;

  for (const kv::BlockCopy& c : plan.copies) {
    if (c.from_block < 0 || c.to_block < 0 || c.from_block >= storage->n_blocks() ||
        c.to_block >= storage->n_blocks()) {
      fail_all("engine: block copy outside the KV storage");
      (void)scheduler->update(plan, {});
      return;
    }
    copy_block(*storage, c);
  }

  const auto now = Clock::now();
  ForwardBatch batch;
  for (const sched::ScheduledRequest& sr : plan.requests) {
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
    batch.seqs.push_back(SeqRef{std::move(table.value()), sr.first_position});
    for (int32_t i = 0; i < sr.n_tokens; ++i) {
      batch.add_token(sr.tokens[i], sr.first_position + i, s, config.block_size,
                      sr.samples && i == sr.n_tokens - 1);
    }
  }

  ForwardOutput out;
  Status st = config.model->forward(batch, *storage, out, *pool);
  if (!st.ok()) {
    fail_all("forward: " + st.message());
    (void)scheduler->update(plan, {});
    return;
  }

  const int64_t vocab = config.model->config().vocab_size;
  std::vector<sched::SampledToken> sampled;
  size_t row = 0;
  for (const sched::ScheduledRequest& sr : plan.requests) {
    if (!sr.samples) continue;
    LiveRequest& r = requests.at(sr.id);
    const float* logits = out.logits.data() + row++ * vocab;  // [vocab]
    const int32_t token =
        r.sampler.sample(logits, vocab, TokenHistory{r.prompt, r.output, eos_ids});
    const auto t = Clock::now();
    if (r.output.empty()) r.first_token = t;
    r.last_token = t;
    r.output.push_back(token);
    FinishChecker::Step check = r.checker.on_token(token, r.detok.push(token));
    Event e;
    e.tokens.push_back(token);
    e.text = std::move(check.text);
    if (check.finish) {
      r.finish = from_sample(*check.finish);
      if (*r.finish == FinishReason::kLength) e.text += r.detok.flush();
      r.tail = std::move(e);
    } else {
      r.stream->push(std::move(e));
    }
    sampled.push_back(sched::SampledToken{sr.id, token, r.finish == FinishReason::kStop});
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
    const FinishReason reason = r.finish ? *r.finish : from_sched(f.reason);
    finish(r, reason, f.message, std::move(r.tail));
  }
}

}  // namespace dspark::engine
