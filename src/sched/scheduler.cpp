// Scheduler: request intake, abort, preemption and finishing, stats and queries.
#include <algorithm>
#include <string>
#include <utility>

#include "dspark/sched.h"

namespace dspark::sched {

namespace {
std::string req_name(RequestId id) {
  return "sched: request " + std::to_string(id);
}

template <class C>
void erase_id(C& ids, RequestId id) {
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
}
}  // namespace

Result<Scheduler> Scheduler::create(const SchedulerConfig& config, kv::BlockManager& kv) {
  if (config.max_num_batched_tokens < 1) {
    return Error{"sched: max_num_batched_tokens must be positive, got " +
                 std::to_string(config.max_num_batched_tokens)};
  }
  if (config.max_num_seqs < 1) {
    return Error{"sched: max_num_seqs must be positive, got " +
                 std::to_string(config.max_num_seqs)};
  }
  if (config.long_prefill_chunk && *config.long_prefill_chunk < 1) {
    return Error{"sched: long_prefill_chunk must be positive, got " +
                 std::to_string(*config.long_prefill_chunk)};
  }
  return Scheduler(config, kv);
}

int64_t max_request_tokens(const kv::KvConfig& kc) {
  const int64_t usable = int64_t(kc.n_blocks) - (kc.prefix_caching ? 1 : 0);
  if (usable < 1 || kc.block_size < 1) return 0;
  // ceil((total - 1) / block_size) <= usable blocks, and slot ids stay int32.
  return std::min<int64_t>(usable * kc.block_size + 1, int64_t(INT32_MAX) + 1);
}

Status Scheduler::add_request(RequestId id, std::vector<int32_t> prompt, int32_t max_new_tokens,
                              std::optional<RequestId> group) {
  if (requests_.count(id) != 0) return Error{req_name(id) + " already exists"};
  if (prompt.empty()) return Error{req_name(id) + " has an empty prompt"};
  if (max_new_tokens < 1) {
    return Error{req_name(id) + ": max_new_tokens must be positive, got " +
                 std::to_string(max_new_tokens)};
  }
  for (int32_t t : prompt) {
    if (t < 0) return Error{req_name(id) + ": negative token id " + std::to_string(t)};
  }
  const kv::KvConfig& kc = kv_->config();
  const int64_t total = int64_t(prompt.size()) + max_new_tokens;
  if (total > max_request_tokens(kc)) {
    const int64_t blocks = (total - 1 + kc.block_size - 1) / kc.block_size;
    return Error{req_name(id) + ": " + std::to_string(prompt.size()) + " prompt tokens plus " +
                 std::to_string(max_new_tokens) + " new ones need " + std::to_string(blocks) +
                 (kc.prefix_caching ? " KV blocks and a spare one" : " KV blocks") +
                 ", the pool has " + std::to_string(kc.n_blocks)};
  }
  if (group) {
    // Forks share KV by position, so the whole prompt must be the same.
    for (const auto& [other_id, other] : requests_) {
      if (other.group != group) continue;
      if (other.n_prompt != int32_t(prompt.size()) ||
          !std::equal(prompt.begin(), prompt.end(), other.tokens.begin())) {
        return Error{req_name(id) + ": its prompt differs from that of request " +
                     std::to_string(other_id) + " in group " + std::to_string(*group)};
      }
      break;
    }
  }
  Request r;
  r.id = id;
  r.group = group;
  r.n_prompt = static_cast<int32_t>(prompt.size());
  r.tokens = std::move(prompt);
  r.max_new_tokens = max_new_tokens;
  requests_.emplace(id, std::move(r));
  waiting_.push_back(id);
  return Status::Ok();
}

void Scheduler::preempt(Request& r, StepPlan& plan) {
  // The request holds blocks while running, so freeing cannot fail.
  (void)kv_->free_request(r.id);
  erase_id(running_, r.id);
  r.state = RequestState::kPreempted;
  r.n_computed = 0;
  r.n_prefill = 0;
  // Front of the queue: it resumes before anything that arrived after it.
  waiting_.push_front(r.id);
  ++n_preemptions_;
  plan.preempted.push_back(r.id);
}

FinishedRequest Scheduler::finish(Request& r, FinishReason reason, std::string message) {
  const RequestId id = r.id;
  if (r.state == RequestState::kRunning) (void)kv_->free_request(id);
  erase_id(running_, id);
  erase_id(waiting_, id);
  FinishedRequest done{id, reason,
                       std::vector<int32_t>(r.tokens.begin() + r.n_prompt, r.tokens.end()),
                       std::move(message)};
  requests_.erase(id);
  return done;
}

Status Scheduler::abort(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return Error{req_name(id) + " is unknown or already finished"};
  (void)finish(it->second, FinishReason::kAbort, "aborted");
  return Status::Ok();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.n_running = static_cast<int32_t>(running_.size());
  s.n_waiting = static_cast<int32_t>(waiting_.size());
  s.n_kv_blocks = kv_->pool().n_blocks();
  s.n_kv_blocks_used = s.n_kv_blocks - kv_->pool().n_available();
  s.kv_usage = s.n_kv_blocks > 0 ? double(s.n_kv_blocks_used) / s.n_kv_blocks : 0.0;
  s.n_preemptions = n_preemptions_;
  s.n_prefix_hit_tokens = kv_->n_prefix_hit_tokens();
  s.n_forked_tokens = kv_->n_forked_tokens();
  return s;
}

Result<RequestInfo> Scheduler::info(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return Error{req_name(id) + " is unknown or already finished"};
  const Request& r = it->second;
  return RequestInfo{r.state, r.n_prompt, r.n_computed,
                     std::vector<int32_t>(r.tokens.begin() + r.n_prompt, r.tokens.end())};
}

}  // namespace dspark::sched
