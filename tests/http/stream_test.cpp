// Streamed replies: chunk-by-chunk delivery, client disconnect detection, write timeouts.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "http/raw_client.h"
#include "http/test_server.h"

namespace dspark::http::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Lets the test release the handler one step at a time.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    ++permits_;
    cv_.notify_all();
  }
  bool pass(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, limit, [&] { return permits_ > 0; })) return false;
    --permits_;
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int permits_ = 0;
};

Reply streamed(std::function<void(StreamWriter&)> body) {
  Reply reply;
  reply.head.content_type = "text/event-stream";
  reply.stream = std::move(body);
  return reply;
}

TEST(HttpStream, ChunksArriveOneByOneAndConnectionStaysUsable) {
  Gate gate;
  TestServer server(fast_config(), [&](const Request& r) {
    if (r.path != "/stream") return Reply{};
    return streamed([&](StreamWriter& w) {
      for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(w.write("data: " + std::to_string(i) + "\n\n"));
        w.write("");  // nothing to send; must not end the body
        // The next chunk only after the client has seen this one: proves each is flushed.
        ASSERT_TRUE(gate.pass(2s));
      }
    });
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/stream")));
  auto head = client.read_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->chunked);
  EXPECT_EQ(*head->header("content-type"), "text/event-stream");
  for (int i = 0; i < 3; ++i) {
    auto chunk = client.read_chunk();
    ASSERT_TRUE(chunk) << "chunk " << i;
    EXPECT_EQ(*chunk, "data: " + std::to_string(i) + "\n\n");
    gate.open();
  }
  auto last = client.read_chunk();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, "");
  ASSERT_TRUE(client.send(make_request("GET", "/plain")));
  auto next = client.read_response();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

TEST(HttpStream, ClientClosingMidStreamIsNoticedQuickly) {
  std::atomic<int64_t> noticed_at{0};
  TestServer server(fast_config(), [&](const Request&) {
    return streamed([&](StreamWriter& w) {
      for (int i = 0; i < 2000; ++i) {
        // Either signal may come first: the write failing or the disconnect check.
        if (!w.write("tick\n") || w.disconnected()) break;
        std::this_thread::sleep_for(5ms);
      }
      noticed_at = Clock::now().time_since_epoch().count();
    });
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/s")));
  ASSERT_TRUE(client.read_head());
  ASSERT_TRUE(client.read_chunk());
  auto closed_at = Clock::now();
  client.close();
  auto deadline = closed_at + 2s;
  while (noticed_at == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_NE(noticed_at.load(), 0);
  auto delay = Clock::time_point(Clock::duration(noticed_at.load())) - closed_at;
  EXPECT_LT(delay, 100ms) << std::chrono::duration_cast<std::chrono::milliseconds>(delay).count();
  EXPECT_TRUE(server.wait_active(0, 1s));
}

TEST(HttpStream, RequestDisconnectedSeesCloseButNotPipelinedBytes) {
  std::atomic<int> disconnected_seen{-1};
  std::atomic<bool> pipelined_seen_as_gone{true};
  TestServer server(fast_config(), [&](const Request& r) {
    if (r.path == "/first") {
      // The second request is already in the socket buffer: that is not a disconnect.
      std::this_thread::sleep_for(20ms);
      pipelined_seen_as_gone = r.disconnected();
      return Reply{};
    }
    if (r.path == "/wait") {
      for (int i = 0; i < 400 && !r.disconnected(); ++i) std::this_thread::sleep_for(5ms);
      disconnected_seen = r.disconnected() ? 1 : 0;
    }
    return Reply{};
  });
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.send(make_request("GET", "/first") + make_request("GET", "/second")));
    ASSERT_TRUE(client.read_response());
    ASSERT_TRUE(client.read_response());
    EXPECT_FALSE(pipelined_seen_as_gone.load());
  }
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/wait")));
  std::this_thread::sleep_for(20ms);
  auto closed_at = Clock::now();
  client.close();
  while (disconnected_seen < 0 && Clock::now() < closed_at + 3s) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(disconnected_seen.load(), 1);
  EXPECT_LT(Clock::now() - closed_at, 200ms);
}

TEST(HttpStream, WriteToAClientThatDoesNotReadTimesOut) {
  std::atomic<int64_t> failed_after_ms{-1};
  ServerConfig config = fast_config();
  config.write_timeout = 100ms;
  TestServer server(config, [&](const Request&) {
    return streamed([&](StreamWriter& w) {
      std::string big(256 * 1024, 'x');
      for (int i = 0; i < 400; ++i) {
        auto start = Clock::now();
        if (!w.write(big)) {
          failed_after_ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
          return;
        }
      }
    });
  });
  RawClient client(server.port());
  client.set_receive_buffer(4096);
  ASSERT_TRUE(client.send(make_request("GET", "/big")));
  auto deadline = Clock::now() + 3s;
  while (failed_after_ms < 0 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_GE(failed_after_ms.load(), 0) << "write never failed";
  EXPECT_GE(failed_after_ms.load(), 90);
  EXPECT_LT(failed_after_ms.load(), 600);
  EXPECT_TRUE(server.wait_active(0, 1s));  // the connection is dropped
}

TEST(HttpStream, Http10StreamEndsWithConnectionClose) {
  TestServer server(fast_config(), [&](const Request&) {
    return streamed([](StreamWriter& w) {
      w.write("one,");
      w.write("two");
    });
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send("GET /s HTTP/1.0\r\n\r\n"));
  auto all = client.read_until_close();
  ASSERT_TRUE(all);
  EXPECT_NE(all->find("HTTP/1.0 200 OK\r\n"), std::string::npos);
  EXPECT_EQ(all->find("chunked"), std::string::npos);
  EXPECT_EQ(all->substr(all->size() - 7), "one,two");
}

TEST(HttpStream, ExceptionInsideStreamCutsTheResponse) {
  TestServer server(fast_config(), [&](const Request&) {
    return streamed([](StreamWriter& w) {
      w.write("partial");
      throw std::runtime_error("generation failed");
    });
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/s")));
  ASSERT_TRUE(client.read_head());
  auto chunk = client.read_chunk();
  ASSERT_TRUE(chunk);
  EXPECT_EQ(*chunk, "partial");
  auto rest = client.read_until_close();  // closed without the last chunk
  ASSERT_TRUE(rest);
  EXPECT_EQ(*rest, "");
}

}  // namespace
}  // namespace dspark::http::testing
