// Graceful shutdown: in-flight requests finish within the grace period, stuck ones are cut
// after it, idle connections close at once, new requests get 503, nothing leaks.
#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "http/raw_client.h"
#include "http/test_server.h"

namespace dspark::http::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Reply streamed(std::function<void(StreamWriter&)> body) {
  Reply reply;
  reply.head.content_type = "text/event-stream";
  reply.stream = std::move(body);
  return reply;
}

int count_entries(const char* dir) {
  DIR* d = ::opendir(dir);
  if (d == nullptr) return -1;
  int n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

TEST(HttpShutdown, InFlightStreamFinishesWithinGrace) {
  TestServer server(fast_config(), [](const Request&) {
    return streamed([](StreamWriter& w) {
      for (int i = 0; i < 5; ++i) {
        w.write("part" + std::to_string(i) + ";");
        std::this_thread::sleep_for(20ms);
      }
    });
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/s")));
  ASSERT_TRUE(client.read_head());
  auto start = Clock::now();
  server.shutdown(2s);
  std::string body;
  for (;;) {
    auto chunk = client.read_chunk();
    ASSERT_TRUE(chunk);
    if (chunk->empty()) break;
    body += *chunk;
  }
  EXPECT_EQ(body, "part0;part1;part2;part3;part4;");
  EXPECT_TRUE(client.read_until_close());  // not kept alive during shutdown
  EXPECT_TRUE(server.wait_stopped(1s));
  EXPECT_LT(Clock::now() - start, 1s);
}

TEST(HttpShutdown, StuckStreamIsCutAfterGrace) {
  std::atomic<bool> writer_failed{false};
  TestServer server(fast_config(), [&](const Request&) {
    return streamed([&](StreamWriter& w) {
      while (w.write("x")) std::this_thread::sleep_for(5ms);
      writer_failed = true;
    });
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/s")));
  ASSERT_TRUE(client.read_head());
  ASSERT_TRUE(client.read_chunk());
  auto start = Clock::now();
  server.shutdown(150ms);
  ASSERT_TRUE(server.wait_stopped(2s));
  auto took = Clock::now() - start;
  EXPECT_GE(took, 140ms);
  EXPECT_LT(took, 600ms) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  EXPECT_TRUE(writer_failed.load());
  // The client sees the stream end without its last chunk.
  for (;;) {
    auto chunk = client.read_chunk();
    if (!chunk) break;
    ASSERT_FALSE(chunk->empty()) << "stream was completed, not cut";
  }
}

TEST(HttpShutdown, StuckHandlerSeesDisconnectedAfterGrace) {
  std::atomic<bool> gave_up{false};
  TestServer server(fast_config(), [&](const Request& r) {
    while (!r.disconnected()) std::this_thread::sleep_for(2ms);
    gave_up = true;
    return Reply{};
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/wait")));
  ASSERT_TRUE(server.wait_active(1, 1s));
  std::this_thread::sleep_for(20ms);
  server.shutdown(100ms);
  ASSERT_TRUE(server.wait_stopped(2s));
  EXPECT_TRUE(gave_up.load());
}

TEST(HttpShutdown, IdleConnectionsCloseAtOnceAndNewRequestsGet503) {
  std::atomic<bool> release{false};
  TestServer server(fast_config(), [&](const Request& r) {
    if (r.path == "/slow") {
      while (!release) std::this_thread::sleep_for(1ms);
    }
    return Reply{};
  });
  RawClient idle(server.port());
  ASSERT_TRUE(idle.send(make_request("GET", "/")));
  ASSERT_TRUE(idle.read_response());
  RawClient busy(server.port());  // keeps the server draining
  ASSERT_TRUE(busy.send(make_request("GET", "/slow")));
  RawClient partial(server.port());  // a request already on its way when shutdown starts
  ASSERT_TRUE(partial.send("GET /late HTTP/1.1\r\nHost: t\r\n"));
  ASSERT_TRUE(server.wait_active(3, 1s));
  std::this_thread::sleep_for(30ms);

  server.shutdown(5s);
  auto start = Clock::now();
  auto idle_rest = idle.read_until_close();
  ASSERT_TRUE(idle_rest);
  EXPECT_EQ(*idle_rest, "");
  EXPECT_LT(Clock::now() - start, 100ms);

  ASSERT_TRUE(partial.send("\r\n"));
  auto late = partial.read_response();
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, 503);
  EXPECT_EQ(*late->header("connection"), "close");

  RawClient refused(server.port());  // the listener is closed
  EXPECT_FALSE(refused.connected() && refused.send(make_request("GET", "/")) &&
               refused.read_response());

  release = true;
  auto slow = busy.read_response();
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->status, 200);
  EXPECT_EQ(*slow->header("connection"), "close");
  EXPECT_TRUE(server.wait_stopped(1s));
}

TEST(HttpShutdown, ShutdownIsIdempotentAndWorksFromAHandler) {
  Server* self = nullptr;
  TestServer server(fast_config(), [&](const Request&) {
    self->shutdown(1s);  // must not wait for this very request
    self->shutdown(1s);
    return Reply{};
  });
  self = &server.server();
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/quit")));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(server.wait_stopped(1s));
  server.shutdown(0ms);
}

TEST(HttpShutdown, ShutdownBeforeRunReturnsAtOnce) {
  auto created = Server::create(fast_config(), [](const Request&) { return Reply{}; });
  ASSERT_TRUE(created.ok());
  (*created)->shutdown(0ms);
  auto start = Clock::now();
  (*created)->run();
  EXPECT_LT(Clock::now() - start, 100ms);
}

TEST(HttpShutdown, NoThreadOrDescriptorLeaksWithManyConnections) {
  const int fds_before = count_entries("/proc/self/fd");
  const int threads_before = count_entries("/proc/self/task");
  {
    ServerConfig config = fast_config();
    config.max_connections = 200;
    TestServer server(config, [](const Request& r) {
      Reply reply;
      reply.head.body = r.body;
      return reply;
    });
    std::vector<std::unique_ptr<RawClient>> open;
    for (int i = 0; i < 150; ++i) {
      auto client = std::make_unique<RawClient>(server.port());
      ASSERT_TRUE(client->connected());
      switch (i % 3) {
        case 0:  // served, then left idle
          ASSERT_TRUE(client->send(make_request("POST", "/", "x")));
          ASSERT_TRUE(client->read_response());
          open.push_back(std::move(client));
          break;
        case 1:  // served, then closed by the client
          ASSERT_TRUE(client->send(make_request("POST", "/", "y")));
          ASSERT_TRUE(client->read_response());
          break;
        default:  // half a request, left hanging
          ASSERT_TRUE(client->send("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"));
          open.push_back(std::move(client));
      }
    }
    EXPECT_GT(server.server().active_connections(), 50);
    server.shutdown(100ms);
    ASSERT_TRUE(server.wait_stopped(3s));
    EXPECT_EQ(server.server().active_connections(), 0);
  }
  EXPECT_EQ(count_entries("/proc/self/fd"), fds_before);
  EXPECT_EQ(count_entries("/proc/self/task"), threads_before);
}

}  // namespace
}  // namespace dspark::http::testing
