// The engine requests behind one HTTP request: submitted together, read as one multiplexed
// event sequence, and, whenever the HTTP side gives up early (client gone, error, shutdown),
// aborted and drained so their KV blocks are freed and the counters settle.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "dspark/engine.h"
#include "server_state.h"

namespace dspark::server {

class EngineRequests {
 public:
  using Clock = std::chrono::steady_clock;

  EngineRequests(std::shared_ptr<State> state, std::shared_ptr<const ServedModel> model);
  ~EngineRequests();  // abort_and_drain()
  EngineRequests(const EngineRequests&) = delete;
  EngineRequests& operator=(const EngineRequests&) = delete;

  // Submits n completions of one request (Engine::submit_n: the prompt is computed once, choice
  // i samples with seed + i), indexed in submission order; the engine's error otherwise.
  Status submit_n(engine::Request request, int32_t n);
  size_t size() const { return streams_.size(); }
  bool finished() const { return n_done_ == streams_.size(); }

  // The next event of any unfinished request (its index and the event), waiting up to `wait`.
  std::optional<std::pair<size_t, engine::Event>> next(std::chrono::milliseconds wait);
  // Aborts the unfinished requests and waits for their final events.
  void abort_and_drain();

  Clock::time_point started() const { return started_; }

 private:
  void observe(size_t i, const engine::Event& event);

  std::shared_ptr<State> state_;
  std::shared_ptr<const ServedModel> model_;
  Clock::time_point started_;
  std::vector<std::shared_ptr<engine::Stream>> streams_;
  std::vector<Clock::time_point> submitted_, last_event_;  // [n_requests]
  std::vector<bool> done_, has_tokens_;                    // [n_requests]
  size_t n_done_ = 0;
  size_t cursor_ = 0;  // round-robin start, so no request starves the others
};

}  // namespace dspark::server
