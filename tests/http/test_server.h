// Runs a transport Server on an ephemeral port in a background thread for one test.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "dspark/http.h"

namespace dspark::http::testing {

// Short timeouts so limit and timeout tests finish in milliseconds.
ServerConfig fast_config();

class TestServer {
 public:
  TestServer(ServerConfig config, Handler handler);
  ~TestServer();  // shuts down (no grace) if the test did not

  bool ok() const { return server_ != nullptr; }
  uint16_t port() const { return server_->port(); }
  Server& server() { return *server_; }
  void shutdown(std::chrono::milliseconds grace) { server_->shutdown(grace); }
  // Waits for run() to return; true when it did within `limit`.
  bool wait_stopped(std::chrono::milliseconds limit);
  // Polls active_connections() until it equals `n` or `limit` passes.
  bool wait_active(int n, std::chrono::milliseconds limit);

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace dspark::http::testing
