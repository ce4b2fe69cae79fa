// Scheduler step: schedule() plans one forward under the token budget and KV capacity, update()
// commits its results.
#include <algorithm>
#include <string>
#include <unordered_map>

#include "dspark/sched.h"

namespace dspark::sched {

namespace {
std::string req_name(RequestId id) {
  return "sched: request " + std::to_string(id);
}
}  // namespace

int32_t Scheduler::prefill_chunk(int32_t remaining, int32_t budget) const {
  int32_t n = std::min(remaining, budget);
  if (config_.long_prefill_chunk) n = std::min(n, *config_.long_prefill_chunk);
  return n;
}

bool Scheduler::schedule_running(Request& r, int32_t& budget, StepPlan& plan) {
  const int32_t n_known = static_cast<int32_t>(r.tokens.size());
  // A running request is known to the BlockManager, so these queries cannot fail.
  const int32_t n_kv = *kv_->n_tokens(r.id);
  if (n_kv < n_known) {
    // The last sampled token becomes this step's input: it needs a KV slot. Make room by
    // preempting the most recently admitted request, possibly r itself.
    while (!*kv_->can_append(r.id, n_known - n_kv)) {
      Request& victim = requests_.at(running_.back());
      const bool self = &victim == &r;
      preempt(victim, plan);
      if (self) return false;
    }
    (void)kv_->append(r.id, std::span<const int32_t>(r.tokens).subspan(size_t(n_kv)));
  }
  const bool prefill = r.n_computed < r.n_prefill;
  const int32_t remaining = n_known - r.n_computed;
  const int32_t n = prefill ? prefill_chunk(remaining, budget) : std::min(remaining, budget);
  ScheduledRequest item;
  item.id = r.id;
  item.prefill = prefill;
  item.first_position = r.n_computed;
  item.n_tokens = n;
  item.tokens.assign(r.tokens.begin() + r.n_computed, r.tokens.begin() + r.n_computed + n);
  item.samples = r.n_computed + n == n_known;
  r.scheduled_step = plan.step;
  budget -= n;
  plan.n_tokens += n;
  plan.requests.push_back(std::move(item));
  return true;
}

Scheduler::ForkPlan Scheduler::fork_plan(const Request& r) const {
  // Only a prompt of two tokens or more leaves something to share; a request with output
  // recomputes after a preemption.
  if (!r.group || r.n_prompt < 2 || int32_t(r.tokens.size()) != r.n_prompt) return {};
  ForkPlan plan;
  for (RequestId id : running_) {
    const Request& other = requests_.at(id);
    if (other.group != r.group) continue;
    if (other.n_computed >= r.n_prompt - 1) return ForkPlan{false, id};
    plan.wait = true;
  }
  return plan;
}

Status Scheduler::admit(Request& r, std::optional<RequestId> source, int32_t& budget,
                        StepPlan& plan) {
  // Errors without change when the blocks are not there.
  auto added = source ? kv_->fork_request(r.id, *source, r.tokens, r.n_prompt - 1)
                      : kv_->add_request(r.id, r.tokens);
  if (!added.ok()) return added.error();
  start(r, *added, plan.copies);
  // Fresh blocks hold every prompt position, so scheduling it cannot preempt anything.
  (void)schedule_running(r, budget, plan);
  return Status::Ok();
}

void Scheduler::start(Request& r, const kv::AddResult& added, std::vector<kv::BlockCopy>& copies) {
  if (added.copy) copies.push_back(*added.copy);
  r.state = RequestState::kRunning;
  r.n_prefill = static_cast<int32_t>(r.tokens.size());
  // The BlockManager never serves the last token from the cache, so at least one is computed.
  r.n_computed = added.n_hit_tokens;
  running_.push_back(r.id);
}

void Scheduler::hand_over(const Request& source) {
  if (!source.group) return;
  for (size_t i = 0; i < waiting_.size() && running_.size() < size_t(config_.max_num_seqs);) {
    Request& w = requests_.at(waiting_[i]);
    const bool takes = w.group == source.group && w.n_prompt >= 2 &&
                       int32_t(w.tokens.size()) == w.n_prompt &&
                       source.n_computed >= w.n_prompt - 1;
    if (!takes) {
      ++i;
      continue;
    }
    auto added = kv_->fork_request(w.id, source.id, w.tokens, w.n_prompt - 1);
    if (!added.ok()) break;  // out of blocks: the rest prefill once admitted
    start(w, *added, pending_copies_);
    waiting_.erase(waiting_.begin() + std::ptrdiff_t(i));
  }
}

Result<StepPlan> Scheduler::schedule() {
  if (in_flight_) {
    return Error{"sched: step " + std::to_string(step_) + " is in flight: call update() first"};
  }
  StepPlan plan;
  plan.step = step_;
  plan.copies.swap(pending_copies_);
  int32_t budget = config_.max_num_batched_tokens;
  const int64_t preemptions_before = n_preemptions_;
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    // Preemption pops from the back, so running_[i] itself is the last one it can remove.
    if (!schedule_running(requests_.at(running_[i]), budget, plan)) break;
  }
  // After a preemption the pool is tight: admitting now would only preempt again.
  const bool admit_more = n_preemptions_ == preemptions_before;
  size_t next = 0;  // waiting_ index: group members waiting for a fork source are passed over
  while (admit_more && next < waiting_.size() && budget > 0 &&
         running_.size() < size_t(config_.max_num_seqs)) {
    Request& r = requests_.at(waiting_[next]);
    const ForkPlan fork = fork_plan(r);
    if (fork.wait) {
      ++next;
      continue;
    }
    Status admitted = admit(r, fork.source, budget, plan);
    if (admitted.ok()) {
      waiting_.erase(waiting_.begin() + std::ptrdiff_t(next));
      continue;
    }
    if (!running_.empty()) break;  // waits for running requests to free blocks (FCFS)
    // Nothing runs, so nothing of ours will free blocks: waiting would never end.
    plan.finished.push_back(
        finish(r, FinishReason::kError, "sched: cannot admit: " + admitted.message()));
  }
  if (plan.requests.empty()) {
    ++step_;  // nothing to run: no update() expected
  } else {
    in_flight_ = true;
  }
  return plan;
}

Result<std::vector<FinishedRequest>> Scheduler::update(const StepPlan& plan,
                                                       std::span<const SampledToken> sampled) {
  if (!in_flight_ || plan.step != step_) {
    return Error{"sched: plan of step " + std::to_string(plan.step) + " is not in flight"};
  }
  auto live = [&](const ScheduledRequest& item) -> Request* {
    auto it = requests_.find(item.id);
    if (it == requests_.end()) return nullptr;
    Request& r = it->second;
    return r.state == RequestState::kRunning && r.scheduled_step == plan.step ? &r : nullptr;
  };
  // Validate everything before changing anything.
  std::unordered_map<RequestId, const SampledToken*> by_id;
  for (const SampledToken& s : sampled) {
    if (s.token < 0) return Error{req_name(s.id) + ": negative sampled token"};
    for (int32_t t : s.accepted) {
      if (t < 0) return Error{req_name(s.id) + ": negative accepted token"};
    }
    if (!by_id.emplace(s.id, &s).second) return Error{req_name(s.id) + " sampled twice"};
  }
  size_t n_matched = 0;
  for (const ScheduledRequest& item : plan.requests) {
    if (!item.samples) continue;
    auto it = by_id.find(item.id);
    n_matched += it != by_id.end() ? 1 : 0;
    Request* r = live(item);
    if (it == by_id.end()) {
      if (r != nullptr) return Error{req_name(item.id) + " has no sampled token"};
      continue;
    }
    if (r == nullptr || it->second->accepted.empty()) continue;
    // Accepted drafts must already sit in the KV right after the step's positions.
    const int64_t expected = int64_t{item.first_position} + item.n_tokens +
                             static_cast<int64_t>(it->second->accepted.size());
    auto n_kv = kv_->n_tokens(item.id);
    if (!n_kv.ok() || *n_kv != expected) {
      return Error{req_name(item.id) + ": accepted tokens not committed in the KV (" +
                   std::to_string(n_kv.ok() ? *n_kv : -1) + " tokens there, " +
                   std::to_string(expected) + " expected)"};
    }
  }
  if (n_matched != by_id.size()) {
    return Error{"sched: sampled tokens given for requests that do not sample in step " +
                 std::to_string(plan.step)};
  }

  std::vector<FinishedRequest> finished;
  for (const ScheduledRequest& item : plan.requests) {
    Request* r = live(item);
    if (r == nullptr) continue;  // aborted while the step ran
    const SampledToken* s = item.samples ? by_id.at(item.id) : nullptr;
    const int32_t n_accepted = s ? static_cast<int32_t>(s->accepted.size()) : 0;
    r->n_computed = item.first_position + item.n_tokens + n_accepted;
    DSPARK_RETURN_IF_ERROR(kv_->mark_computed(r->id, r->n_computed));
    if (!s) continue;
    r->tokens.insert(r->tokens.end(), s->accepted.begin(), s->accepted.end());
    r->tokens.push_back(s->token);
    const bool stop = s->stop;
    if (stop || n_output(*r) >= r->max_new_tokens) {
      hand_over(*r);
      finished.push_back(finish(*r, stop ? FinishReason::kStop : FinishReason::kLength, ""));
    }
  }
  in_flight_ = false;
  ++step_;
  return finished;
}

}  // namespace dspark::sched
