// Engine internals shared by engine.cpp (threading, submit/abort) and step.cpp (one step).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dspark/engine.h"
#include "dspark/kv.h"

namespace dspark::engine {

using Clock = std::chrono::steady_clock;

// A request known to the engine thread (admitted into the scheduler).
struct LiveRequest {
  RequestId id = 0;
  std::shared_ptr<Stream> stream;
  std::vector<int32_t> prompt;  // [n_prompt]
  std::vector<int32_t> output;  // [n_generated] sampled so far
  Sampler sampler;
  FinishChecker checker;
  StreamingDetokenizer detok;
  std::optional<FinishReason> finish;  // decided by the stop checks, applied after update()
  Event tail;                          // the finishing token's event, sent with the final record
  Clock::time_point submitted, first_scheduled, first_token, last_token;
  bool scheduled = false;

  LiveRequest(RequestId id_, std::shared_ptr<Stream> s, Request r, const Tokenizer& tok,
              std::vector<int32_t> eos, Clock::time_point t)
      : id(id_),
        stream(std::move(s)),
        prompt(std::move(r.prompt)),
        sampler(r.params),
        checker(r.params, std::move(eos)),
        detok(tok),
        submitted(t) {}
};

struct Pending {
  RequestId id = 0;
  std::shared_ptr<Stream> stream;
  Request request;
  Clock::time_point submitted;
};

struct Engine::Impl {
  EngineConfig config;
  std::vector<int32_t> eos_ids;

  // Guarded by q_mu: the hand-over between callers and the engine thread.
  std::mutex q_mu;
  std::condition_variable q_cv;     // engine thread waits for work
  std::condition_variable idle_cv;  // check_kv_idle waits for the end of a step
  std::deque<Pending> incoming;
  std::vector<RequestId> aborts;
  std::unordered_set<RequestId> live_ids;  // submitted and not yet finished
  RequestId next_id = 1;
  bool stopping = false;

  // Owned by the engine thread; also read under state_mu by check_kv_idle/stats.
  std::mutex state_mu;
  std::unique_ptr<kv::BlockManager> kv;
  std::unique_ptr<sched::Scheduler> scheduler;
  std::unique_ptr<KvStorage> storage;
  std::unique_ptr<cpu::ThreadPool> pool;
  std::unordered_map<RequestId, LiveRequest> requests;
  int64_t n_steps = 0, n_forward_tokens = 0;

  std::thread thread;

  void run();  // the engine thread
  void admit(Pending p);
  void abort_live(RequestId id, FinishReason reason, const std::string& message);
  // Sends the final event (tail: the last tokens and text, if any), drops the request and
  // forgets its id.
  void finish(LiveRequest& r, FinishReason reason, const std::string& message, Event tail);
  void step();  // step.cpp
  void fail_all(const std::string& message);
};

}  // namespace dspark::engine
