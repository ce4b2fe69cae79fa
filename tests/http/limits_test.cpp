// Limits: 413/431/400 answers, the read timeout against slow clients (408), idle keep-alive
// timeout, and max_connections (503).
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "http/raw_client.h"
#include "http/test_server.h"

namespace dspark::http::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Reply ok_reply(const Request& r) {
  Reply reply;
  reply.head.body = "ok " + std::to_string(r.body.size());
  return reply;
}

// Sends `request`, expects one error response with `status` and then the connection closed.
void expect_error_and_close(uint16_t port, const std::string& request, int status) {
  RawClient client(port);
  ASSERT_TRUE(client.send(request));
  auto r = client.read_response();
  ASSERT_TRUE(r) << "no well-formed response; got: " << client.pending();
  EXPECT_EQ(r->status, status);
  EXPECT_EQ(*r->header("content-type"), "application/json");
  EXPECT_NE(r->body.find("\"error\""), std::string::npos);
  ASSERT_TRUE(r->header("connection"));
  EXPECT_EQ(*r->header("connection"), "close");
  EXPECT_TRUE(client.read_until_close());
}

TEST(HttpLimits, BodyTooLargeGets413BeforeTheBodyIsSent) {
  TestServer server(fast_config(), ok_reply);  // max_body_bytes 4096
  expect_error_and_close(server.port(),
                         "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc", 413);
  // Chunked: the limit applies to the decoded body as it arrives.
  std::string chunk = std::string("1000\r\n") + std::string(4096, 'a') + "\r\n";
  expect_error_and_close(server.port(),
                         "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                             chunk + chunk + "0\r\n\r\n",
                         413);
  // At the limit is fine.
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("POST", "/", std::string(4096, 'b'))));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ok 4096");
}

TEST(HttpLimits, HeadersTooLargeGet431) {
  TestServer server(fast_config(), ok_reply);  // max_header_bytes 2048
  expect_error_and_close(server.port(),
                         make_request("GET", "/", "", "X-Big: " + std::string(3000, 'h') + "\r\n"),
                         431);
  std::string many;
  for (int i = 0; i < 400; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  expect_error_and_close(server.port(), make_request("GET", "/", "", many), 431);
  expect_error_and_close(server.port(), make_request("GET", "/" + std::string(4000, 'p')), 431);
}

TEST(HttpLimits, MalformedRequestsGet400) {
  TestServer server(fast_config(), ok_reply);
  expect_error_and_close(server.port(), "GARBAGE\r\n\r\n", 400);
  expect_error_and_close(server.port(), "GET / HTTP/9.9\r\n\r\n", 400);
  expect_error_and_close(server.port(), "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400);
  expect_error_and_close(server.port(), "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400);
  expect_error_and_close(
      server.port(), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      400);
  expect_error_and_close(
      server.port(), "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400);
}

TEST(HttpLimits, SlowClientIsCutAtTheReadTimeoutWhileOthersAreServed) {
  ServerConfig config = fast_config();  // read_timeout 300 ms
  TestServer server(config, ok_reply);
  RawClient slow(server.port());
  auto start = Clock::now();
  std::thread trickle([&] {
    // One byte every 20 ms: each read makes progress, but the request never completes.
    std::string request = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(200, 's');
    for (char c : request) {
      if (!slow.send(std::string_view(&c, 1))) return;
      std::this_thread::sleep_for(20ms);
      if (Clock::now() - start > 2s) return;
    }
  });
  // Meanwhile a normal client is served at once.
  std::this_thread::sleep_for(50ms);
  {
    RawClient other(server.port());
    auto t0 = Clock::now();
    ASSERT_TRUE(other.send(make_request("GET", "/fast")));
    auto r = other.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(Clock::now() - t0, 100ms);
  }
  slow.set_timeout(2s);
  auto r = slow.read_response();
  auto cut_after = Clock::now() - start;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(slow.read_until_close());
  EXPECT_GE(cut_after, 280ms);
  EXPECT_LT(cut_after, 700ms)
      << std::chrono::duration_cast<std::chrono::milliseconds>(cut_after).count();
  trickle.join();
}

TEST(HttpLimits, SlowBodyIsCutAtTheReadTimeout) {
  TestServer server(fast_config(), ok_reply);
  RawClient slow(server.port());
  auto start = Clock::now();
  ASSERT_TRUE(slow.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"));
  for (int i = 0; i < 10; ++i) {
    slow.send("x");
    std::this_thread::sleep_for(20ms);
  }
  auto r = slow.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_LT(Clock::now() - start, 700ms);
}

TEST(HttpLimits, SilentAndIdleConnectionsAreClosed) {
  ServerConfig config = fast_config();
  config.idle_timeout = 150ms;
  TestServer server(config, ok_reply);
  {
    RawClient silent(server.port());  // never sends: closed at the read timeout, no reply
    auto start = Clock::now();
    auto rest = silent.read_until_close();
    ASSERT_TRUE(rest);
    EXPECT_EQ(*rest, "");
    EXPECT_GE(Clock::now() - start, 280ms);
  }
  RawClient idle(server.port());
  ASSERT_TRUE(idle.send(make_request("GET", "/")));
  ASSERT_TRUE(idle.read_response());
  auto start = Clock::now();
  auto rest = idle.read_until_close();
  ASSERT_TRUE(rest);
  EXPECT_EQ(*rest, "");
  EXPECT_GE(Clock::now() - start, 130ms);
  EXPECT_LT(Clock::now() - start, 600ms);
}

TEST(HttpLimits, ConnectionsBeyondTheLimitGet503) {
  ServerConfig config = fast_config();
  config.max_connections = 2;
  TestServer server(config, ok_reply);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(std::make_unique<RawClient>(server.port()));
    ASSERT_TRUE(held.back()->send(make_request("GET", "/")));
    ASSERT_TRUE(held.back()->read_response());
  }
  ASSERT_TRUE(server.wait_active(2, 1s));
  {
    RawClient extra(server.port());
    extra.send(make_request("GET", "/"));
    auto r = extra.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(*r->header("connection"), "close");
    EXPECT_TRUE(r->header("retry-after"));
    EXPECT_TRUE(extra.read_until_close());
  }
  held[0]->close();
  ASSERT_TRUE(server.wait_active(1, 1s));
  RawClient again(server.port());
  ASSERT_TRUE(again.send(make_request("GET", "/")));
  auto r = again.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace dspark::http::testing
