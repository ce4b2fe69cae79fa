// Engine: configuration checks, request validation, the thread-safe submit/abort/stop hand-over
// and the engine thread's loop.
#include <algorithm>
#include <string>

#include "engine_impl.h"

namespace dspark::engine {

namespace {

std::string str(int64_t v) {
  return std::to_string(v);
}

// The model context a request may use (EngineConfig::max_context, else the trained one; 0: no
// limit).
int64_t context_limit(const EngineConfig& config) {
  return config.max_context > 0 ? config.max_context : config.model->config().context_length;
}

// What the KV pool holds for one request: the scheduler's own rule.
int64_t kv_token_limit(const EngineConfig& config) {
  return sched::max_request_tokens(
      kv::KvConfig{config.block_size, config.kv_blocks, config.prefix_caching});
}

// Everything submit() promises to check, before anything is queued.
Status check_request(const EngineConfig& config, const Request& request) {
  const ModelConfig& mc = config.model->config();
  const int64_t n_prompt = static_cast<int64_t>(request.prompt.size());
  if (n_prompt == 0) return Error{"request: empty prompt"};
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    const int32_t t = request.prompt[i];
    if (t < 0 || t >= mc.vocab_size) {
      return Error{"request: prompt token " + str(t) + " at index " + str(int64_t(i)) +
                   " outside the vocabulary [0, " + str(mc.vocab_size) + ")"};
    }
  }
  Status valid = validate(request.params, mc.vocab_size);
  if (!valid.ok()) return Error{"request: " + valid.message()};
  if (request.grammar && request.grammar->vocab()->size() != mc.vocab_size) {
    return Error{"request: the grammar was compiled for a vocabulary of " +
                 str(request.grammar->vocab()->size()) + " tokens, the model has " +
                 str(mc.vocab_size)};
  }
  const int64_t total = n_prompt + request.params.max_tokens;
  const int64_t context = context_limit(config);
  if (context > 0 && total > context) {
    return Error{"request: prompt (" + str(n_prompt) + " tokens) + max_tokens (" +
                 str(request.params.max_tokens) + ") exceeds the model context of " + str(context) +
                 " tokens"};
  }
  if (total > kv_token_limit(config)) {
    return Error{"request: prompt + max_tokens (" + str(total) + " tokens) is more than the " +
                 str(config.kv_blocks) + " KV blocks of " + str(config.block_size) +
                 " tokens hold for one request (at most " + str(kv_token_limit(config)) + ")"};
  }
  return Status::Ok();
}

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  stop();
}

Result<std::unique_ptr<Engine>> Engine::create(EngineConfig config) {
  if (!config.model) return Error{"engine: no model"};
  if (!config.tokenizer) return Error{"engine: no tokenizer"};
  if (config.block_size < 1) return Error{"engine: block_size " + str(config.block_size) + " < 1"};
  if (config.kv_blocks < 1) return Error{"engine: kv_blocks " + str(config.kv_blocks) + " < 1"};
  if (config.turns && (config.turn_player < 0 || config.turn_player >= config.turns->n_players())) {
    return Error{"engine: turn_player " + str(config.turn_player) + " outside the " +
                 str(config.turns->n_players()) + " players of its turns"};
  }
  if (config.tokenizer->vocab_size() > config.model->config().vocab_size) {
    return Error{"engine: tokenizer vocabulary (" + str(config.tokenizer->vocab_size()) +
                 ") larger than the model's (" + str(config.model->config().vocab_size) + ")"};
  }
  auto impl = std::make_unique<Impl>();
  auto kv = kv::BlockManager::create(
      kv::KvConfig{config.block_size, config.kv_blocks, config.prefix_caching});
  if (!kv.ok()) return Error{"engine: " + kv.error().message};
  impl->kv = std::make_unique<kv::BlockManager>(std::move(kv.value()));
  sched::SchedulerConfig sc;
  sc.max_num_batched_tokens = config.max_num_batched_tokens;
  sc.max_num_seqs = config.max_num_seqs;
  sc.long_prefill_chunk = config.long_prefill_chunk;
  auto scheduler = sched::Scheduler::create(sc, *impl->kv);
  if (!scheduler.ok()) return Error{"engine: " + scheduler.error().message};
  impl->scheduler = std::make_unique<sched::Scheduler>(std::move(scheduler.value()));
  impl->storage =
      std::make_unique<KvStorage>(config.model->config(), config.block_size, config.kv_blocks);
  impl->backend = make_cpu_backend(config.threads);
  // The largest step's activations now: the first long prefill then pays no page faults (in
  // --compare-plain the engine that stepped first paid 30-50 ms for both).
  Status reserved = config.model->reserve(config.max_num_batched_tokens);
  if (!reserved.ok()) {
    return Error{"engine: " + reserved.message() + " (lower max_num_batched_tokens)"};
  }
  impl->eos_ids = config.tokenizer->stop_ids();
  impl->config = std::move(config);
  auto spec = Speculation::create(impl->config, impl->eos_ids, *impl->storage, *impl->backend);
  if (!spec.ok()) return spec.error();
  impl->spec = std::move(spec).value();
  impl->publish_stats();  // before the thread starts: stats() of a fresh engine reads it
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Result<std::shared_ptr<Stream>> Engine::submit(Request request) {
  auto streams = submit_n(std::move(request), 1);
  if (!streams.ok()) return streams.error();
  return std::move(streams.value().front());
}

Result<std::vector<std::shared_ptr<Stream>>> Engine::submit_n(Request request, int32_t n) {
  if (n < 1) return Error{"request: n must be at least 1, got " + str(n)};
  Status valid = check_request(impl_->config, request);
  if (!valid.ok()) return valid.error();
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard<std::mutex> lock(impl_->q_mu);
    if (impl_->stopping) return Error{"engine: stopped"};
    const auto now = Clock::now();
    const RequestId first = impl_->next_id;
    // One request has nothing to share: no group, exactly a plain submit.
    const std::optional<RequestId> group = n > 1 ? std::optional<RequestId>(first) : std::nullopt;
    for (int32_t i = 0; i < n; ++i) {
      const RequestId id = impl_->next_id++;
      Request member = request;
      member.params.seed += uint64_t(i);
      streams.push_back(std::make_shared<Stream>(id));
      impl_->live_ids.insert(id);
      impl_->incoming.push_back(Pending{id, streams.back(), std::move(member), now, group});
    }
  }
  impl_->q_cv.notify_all();
  return streams;
}

Status Engine::abort(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(impl_->q_mu);
    if (!impl_->live_ids.count(id)) {
      return Error{"abort: request " + str(id) + " is unknown or already finished"};
    }
    impl_->aborts.push_back(id);
  }
  impl_->q_cv.notify_all();
  return Status::Ok();
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->q_mu);
    impl_->stopping = true;
  }
  impl_->q_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Status Engine::check_kv_idle(std::chrono::milliseconds timeout) {
  {
    std::unique_lock<std::mutex> lock(impl_->q_mu);
    if (!impl_->idle_cv.wait_for(lock, timeout, [&] { return impl_->live_ids.empty(); })) {
      return Error{"engine: " + str(int64_t(impl_->live_ids.size())) +
                   " requests still live after the timeout"};
    }
  }
  std::lock_guard<std::mutex> lock(impl_->state_mu);
  if (impl_->scheduler->has_unfinished()) return Error{"engine: scheduler still holds requests"};
  if (impl_->kv->n_requests() != 0) {
    return Error{"engine: KV still holds " + str(impl_->kv->n_requests()) + " requests"};
  }
  Status st = impl_->kv->check_invariants();
  if (!st.ok()) return Error{"engine: KV invariants: " + st.message()};
  const kv::BlockPool& pool = impl_->kv->pool();
  if (pool.n_available() != pool.n_blocks()) {
    return Error{"engine: " + str(pool.n_blocks() - pool.n_available()) +
                 " KV blocks still referenced"};
  }
  return Status::Ok();
}

int64_t Engine::max_request_tokens() const {
  const int64_t context = context_limit(impl_->config);
  const int64_t kv = kv_token_limit(impl_->config);
  return context > 0 ? std::min(context, kv) : kv;
}

int32_t Engine::n_running() const {
  std::lock_guard<std::mutex> lock(impl_->snapshot_mu);
  return impl_->snapshot.sched.n_running;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->snapshot_mu);
  return impl_->snapshot;
}

void Engine::Impl::publish_stats() {
  EngineStats s;
  s.sched = scheduler->stats();
  s.n_steps = n_steps;
  s.n_forward_tokens = n_forward_tokens;
  s.n_prompt_tokens = n_prompt_tokens;
  s.n_generated_tokens = n_generated_tokens;
  s.step_seconds = step_seconds;
  s.spec_method = config.spec.method;
  spec->fill_stats(s);
  std::lock_guard<std::mutex> lock(snapshot_mu);
  snapshot = std::move(s);
}

void Engine::Impl::run() {
  for (;;) {
    const bool busy = !requests.empty();
    bool may_step = false;
    {
      std::unique_lock<std::mutex> lock(q_mu);
      q_cv.wait(lock, [&] { return stopping || busy || !incoming.empty() || !aborts.empty(); });
      may_step = !stopping && (busy || !incoming.empty());
    }
    // The turn comes before the queue is taken, so requests that arrive while another engine
    // steps join this step (engines given the same requests start alike), and before state_mu,
    // so stats() is not held up meanwhile.
    if (may_step && config.turns) config.turns->begin(config.turn_player);
    std::deque<Pending> new_requests;
    std::vector<RequestId> new_aborts;
    bool stop_now = false;
    {
      std::lock_guard<std::mutex> lock(q_mu);
      new_requests.swap(incoming);
      new_aborts.swap(aborts);
      stop_now = stopping;
    }
    {
      std::lock_guard<std::mutex> lock(state_mu);
      for (Pending& p : new_requests) admit(std::move(p));
      for (RequestId id : new_aborts) abort_live(id, FinishReason::kAbort, "");
      if (stop_now) {
        std::vector<RequestId> ids;
        for (auto& [id, r] : requests) ids.push_back(id);
        std::sort(ids.begin(), ids.end());
        for (RequestId id : ids) abort_live(id, FinishReason::kAbort, "");
      } else if (!requests.empty()) {
        const auto t0 = Clock::now();
        step();
        step_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      }
      publish_stats();
      for (auto& [stream, event] : finals_pending) stream->push(std::move(event));
      finals_pending.clear();
    }
    if (may_step && config.turns) config.turns->end(config.turn_player);
    idle_cv.notify_all();
    if (stop_now) return;
  }
}

void Engine::Impl::admit(Pending p) {
  const int32_t max_tokens = p.request.params.max_tokens;
  std::vector<int32_t> prompt = p.request.prompt;
  n_prompt_tokens += static_cast<int64_t>(prompt.size());
  std::shared_ptr<const CompiledGrammar> grammar = p.request.grammar;
  auto [it, inserted] = requests.try_emplace(p.id, p.id, p.stream, std::move(p.request),
                                             *config.tokenizer, eos_ids, p.submitted);
  if (grammar) {
    // One matcher per request (each choice of submit_n has its own).
    auto constraint = Constraint::create(*grammar, config.model->config().vocab_size);
    if (!constraint.ok()) {
      finish(it->second, FinishReason::kError, constraint.error().message, Event{});
      return;
    }
    it->second.constraint = std::move(constraint).value();
  }
  Status st = scheduler->add_request(p.id, std::move(prompt), max_tokens, p.group);
  if (!st.ok()) finish(it->second, FinishReason::kError, "scheduler: " + st.message(), Event{});
}

void Engine::Impl::abort_live(RequestId id, FinishReason reason, const std::string& message) {
  auto it = requests.find(id);
  if (it == requests.end()) return;  // finished before the abort reached the engine thread
  (void)scheduler->abort(id);        // errors only when the scheduler already dropped it
  finish(it->second, reason, message, Event{});
}

void Engine::Impl::finish(LiveRequest& r, FinishReason reason, const std::string& message,
                          Event tail) {
  auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  FinalRecord f;
  f.reason = reason;
  f.message = message;
  f.n_prompt_tokens = r.n_prompt;
  f.n_completion_tokens = static_cast<int32_t>(r.output().size());
  if (r.scheduled) f.timings.queue_s = secs(r.first_scheduled - r.submitted);
  if (!r.output().empty()) {
    f.timings.ttft_s = secs(r.first_token - r.submitted);
    f.timings.decode_s = secs(r.last_token - r.first_token);
  }
  f.spec = r.spec;
  tail.final = std::move(f);
  finals_pending.emplace_back(r.stream, std::move(tail));
  const RequestId id = r.id;
  spec->release(id);
  requests.erase(id);
  std::lock_guard<std::mutex> lock(q_mu);
  live_ids.erase(id);
}

void Engine::Impl::fail_all(const std::string& message) {
  std::vector<RequestId> ids;
  for (auto& [id, r] : requests) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (RequestId id : ids) abort_live(id, FinishReason::kError, message);
}

}  // namespace dspark::engine
