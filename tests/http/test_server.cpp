#include "test_server.h"

#include <gtest/gtest.h>

namespace dspark::http::testing {

using namespace std::chrono_literals;

ServerConfig fast_config() {
  ServerConfig config;
  config.port = 0;
  config.read_timeout = 300ms;
  config.idle_timeout = 2000ms;
  config.write_timeout = 300ms;
  config.max_header_bytes = 2048;
  config.max_body_bytes = 4096;
  config.max_connections = 64;
  return config;
}

TestServer::TestServer(ServerConfig config, Handler handler) {
  auto created = Server::create(std::move(config), std::move(handler));
  EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
  if (!created.ok()) return;
  server_ = std::move(created.value());
  thread_ = std::thread([this] {
    server_->run();
    stopped_ = true;
  });
}

TestServer::~TestServer() {
  if (!server_) return;
  server_->shutdown(0ms);
  thread_.join();
}

bool TestServer::wait_stopped(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!stopped_) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

bool TestServer::wait_active(int n, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (server_->active_connections() != n) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace dspark::http::testing
