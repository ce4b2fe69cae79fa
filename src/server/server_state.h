// The state the OpenAI routes share: options, the served model (null while loading), metrics,
// and the bookkeeping of requests in flight (for 429, graceful shutdown and abort_all).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dspark/server.h"
#include "metrics.h"
#include "request_parse.h"

namespace dspark::server {

struct OpenAiServer::State {
  ServerOptions options;
  RequestLimits limits;
  Metrics metrics;
  int64_t started_unix = 0;  // /v1/models "created"

  std::atomic<bool> shutting_down{false};
  std::atomic<bool> engine_dead{false};  // submit found the engine stopped without a shutdown

  std::shared_ptr<const ServedModel> served() const {
    std::lock_guard<std::mutex> lock(model_mu);
    return model;
  }
  void set_served(std::shared_ptr<const ServedModel> m) {
    std::lock_guard<std::mutex> lock(model_mu);
    model = std::move(m);
  }

  // Held while a generation request is answered (a streamed one until its stream ends).
  class HttpToken {
   public:
    explicit HttpToken(std::shared_ptr<State> state);
    ~HttpToken();
    HttpToken(const HttpToken&) = delete;
    HttpToken& operator=(const HttpToken&) = delete;

   private:
    std::shared_ptr<State> state_;
  };

  // Engine requests submitted and not finished, for abort_all and the waiting-queue estimate.
  void add_live(engine::RequestId id);
  void remove_live(engine::RequestId id);
  int64_t live_engine_requests() const;
  void abort_live();

  // Serialises the queue-limit check with the submits it admits.
  std::mutex admission_mu;

  mutable std::mutex model_mu;
  std::shared_ptr<const ServedModel> model;

  mutable std::mutex live_mu;
  std::condition_variable idle_cv;
  int64_t http_in_flight = 0;
  std::map<engine::RequestId, std::shared_ptr<engine::Engine>> live;
};

using State = OpenAiServer::State;

}  // namespace dspark::server
