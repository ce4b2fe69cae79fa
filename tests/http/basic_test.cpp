// Request/response basics: round trips, keep-alive, pipelining, chunked request bodies, HEAD,
// Expect: 100-continue, handler exceptions, CORS, binding.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <stdexcept>

#include "http/raw_client.h"
#include "http/test_server.h"

namespace dspark::http::testing {
namespace {

using namespace std::chrono_literals;

// Echoes what the transport parsed: "METHOD path?query|x-test|body".
Reply echo(const Request& request) {
  if (request.path == "/throw") throw std::runtime_error("handler failed on purpose");
  const std::string* x = request.header("x-test");
  Reply reply;
  reply.head.content_type = "text/plain";
  reply.head.headers.emplace_back("X-Echo", "yes");
  reply.head.body = request.method + " " + request.path + "?" + request.query + "|" +
                    (x ? *x : "") + "|" + request.body;
  return reply;
}

TEST(HttpBasic, GetRoundTrip) {
  TestServer server(fast_config(), echo);
  ASSERT_TRUE(server.ok());
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/hello?x=1&y=2", "", "X-Test: abc\r\n")));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello?x=1&y=2|abc|");
  ASSERT_TRUE(r->header("content-type"));
  EXPECT_EQ(*r->header("content-type"), "text/plain");
  ASSERT_TRUE(r->header("content-length"));
  EXPECT_EQ(*r->header("content-length"), std::to_string(r->body.size()));
  ASSERT_TRUE(r->header("x-echo"));
  EXPECT_TRUE(r->header("date"));
}

TEST(HttpBasic, PostRoundTrip) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("POST", "/v1/echo", "{\"a\": 1}")));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /v1/echo?||{\"a\": 1}");
}

TEST(HttpBasic, KeepAliveServesSeveralRequestsOnOneConnection) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client.send(make_request("POST", "/n", std::to_string(i))));
    auto r = client.read_response();
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->body, "POST /n?||" + std::to_string(i));
    EXPECT_EQ(r->header("connection"), nullptr);  // HTTP/1.1 default: stays open
  }
  EXPECT_EQ(server.server().active_connections(), 1);
}

TEST(HttpBasic, PipelinedRequestsAnsweredInOrder) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  std::string all;
  for (int i = 0; i < 4; ++i) all += make_request("POST", "/p", "body" + std::to_string(i));
  ASSERT_TRUE(client.send(all));
  for (int i = 0; i < 4; ++i) {
    auto r = client.read_response();
    ASSERT_TRUE(r) << "response " << i;
    EXPECT_EQ(r->body, "POST /p?||body" + std::to_string(i));
  }
}

TEST(HttpBasic, ChunkedRequestBody) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  ASSERT_TRUE(
      client.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /c?||abcdefg");
}

TEST(HttpBasic, ConnectionCloseAndHttp10CloseAfterResponse) {
  TestServer server(fast_config(), echo);
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.send(make_request("GET", "/a", "", "Connection: close\r\n")));
    auto r = client.read_response();
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->header("connection"));
    EXPECT_EQ(*r->header("connection"), "close");
    auto rest = client.read_until_close();
    ASSERT_TRUE(rest);
    EXPECT_EQ(*rest, "");
  }
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.send("GET /b HTTP/1.0\r\n\r\n"));
    auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->version, "HTTP/1.0");
    EXPECT_EQ(r->body, "GET /b?||");
    EXPECT_TRUE(client.read_until_close());
  }
  {
    RawClient client(server.port());  // HTTP/1.0 asking for keep-alive gets it
    ASSERT_TRUE(
        client.send("GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                    "GET /d HTTP/1.0\r\n\r\n"));
    auto first = client.read_response();
    auto second = client.read_response();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(second->body, "GET /d?||");
  }
}

TEST(HttpBasic, HeadSendsHeadersWithoutBody) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("HEAD", "/h") + make_request("GET", "/g")));
  auto head = client.read_response(/*head_only=*/true);
  ASSERT_TRUE(head);
  ASSERT_TRUE(head->header("content-length"));
  EXPECT_EQ(*head->header("content-length"), std::to_string(std::string("HEAD /h?||").size()));
  auto get = client.read_response();  // no body bytes in between
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "GET /g?||");
}

TEST(HttpBasic, ExpectContinueGetsInterimResponse) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  ASSERT_TRUE(
      client.send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  "Expect: 100-continue\r\n\r\n"));
  auto interim = client.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send("hello"));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /e?||hello");
}

TEST(HttpBasic, HandlerExceptionGives500AndConnectionKeepsServing) {
  TestServer server(fast_config(), echo);
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/throw")));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(*r->header("content-type"), "application/json");
  EXPECT_NE(r->body.find("\"error\""), std::string::npos);
  EXPECT_NE(r->body.find("handler failed on purpose"), std::string::npos);
  ASSERT_TRUE(client.send(make_request("GET", "/after")));
  auto next = client.read_response();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

TEST(HttpBasic, HandlerStatusAndHeadersPassThroughButFramingStaysWithTransport) {
  TestServer server(fast_config(), [](const Request&) {
    Reply reply;
    reply.head.status = 404;
    reply.head.body = "{}";
    reply.head.headers = {{"Retry-After", "3"}, {"Content-Length", "999"}, {"Bad", "a\r\nX: y"}};
    return reply;
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("GET", "/x")));
  auto r = client.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(*r->header("content-length"), "2");
  EXPECT_EQ(*r->header("retry-after"), "3");
  EXPECT_EQ(r->header("bad"), nullptr);
  EXPECT_EQ(r->header("x"), nullptr);
}

TEST(HttpBasic, CorsPreflightAndSimpleRequests) {
  ServerConfig config = fast_config();
  config.cors_origins = {"https://app.example"};
  std::atomic<int> handled{0};
  TestServer server(config, [&](const Request& r) {
    ++handled;
    return echo(r);
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send(make_request("OPTIONS", "/v1/chat/completions", "",
                                       "Origin: https://app.example\r\n"
                                       "Access-Control-Request-Method: POST\r\n"
                                       "Access-Control-Request-Headers: x-stainless-os\r\n")));
  auto pre = client.read_response();
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(*pre->header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(*pre->header("vary"), "Origin");
  const std::string* methods = pre->header("access-control-allow-methods");
  ASSERT_TRUE(methods);
  EXPECT_NE(methods->find("POST"), std::string::npos);
  const std::string* headers = pre->header("access-control-allow-headers");
  ASSERT_TRUE(headers);
  EXPECT_NE(headers->find("Authorization"), std::string::npos);
  EXPECT_NE(headers->find("Content-Type"), std::string::npos);
  EXPECT_NE(headers->find("x-stainless-os"), std::string::npos);
  EXPECT_EQ(handled.load(), 0);

  ASSERT_TRUE(client.send(make_request("POST", "/a", "x", "Origin: https://app.example\r\n")));
  auto allowed = client.read_response();
  ASSERT_TRUE(allowed);
  EXPECT_EQ(*allowed->header("access-control-allow-origin"), "https://app.example");

  ASSERT_TRUE(client.send(make_request("POST", "/a", "x", "Origin: https://evil.example\r\n")));
  auto other = client.read_response();
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  EXPECT_EQ(other->header("access-control-allow-origin"), nullptr);

  ASSERT_TRUE(client.send(make_request("OPTIONS", "/a", "",
                                       "Origin: https://evil.example\r\n"
                                       "Access-Control-Request-Method: POST\r\n")));
  auto refused = client.read_response();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403);
  EXPECT_EQ(handled.load(), 2);
}

TEST(HttpBasic, CorsWildcardAndDisabled) {
  ServerConfig config = fast_config();
  config.cors_origins = {"*"};
  TestServer any(config, echo);
  RawClient a(any.port());
  ASSERT_TRUE(a.send(make_request("GET", "/", "", "Origin: http://localhost:3000\r\n")));
  auto r = a.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(*r->header("access-control-allow-origin"), "http://localhost:3000");

  TestServer none(fast_config(), echo);  // no CORS: OPTIONS reaches the handler
  RawClient b(none.port());
  ASSERT_TRUE(b.send(make_request("OPTIONS", "/", "",
                                  "Origin: http://x\r\nAccess-Control-Request-Method: POST\r\n")));
  auto n = b.read_response();
  ASSERT_TRUE(n);
  EXPECT_EQ(n->body, "OPTIONS /?||");
  EXPECT_EQ(n->header("access-control-allow-origin"), nullptr);
}

TEST(HttpBasic, PortZeroBindsAFreePortAndBindErrorsNameTheAddress) {
  TestServer server(fast_config(), echo);
  EXPECT_NE(server.port(), 0);
  ServerConfig taken = fast_config();
  taken.port = server.port();
  auto again = Server::create(taken, echo);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("127.0.0.1:" + std::to_string(server.port())),
            std::string::npos)
      << again.error().message;
  ServerConfig bad_host = fast_config();
  bad_host.host = "not an address";
  EXPECT_FALSE(Server::create(bad_host, echo).ok());
  ServerConfig bad_limit = fast_config();
  bad_limit.max_connections = 0;
  EXPECT_FALSE(Server::create(bad_limit, echo).ok());
}

TEST(HttpBasic, BeastClientRoundTrip) {
  TestServer server(fast_config(), echo);
  namespace beast_http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), server.port()});
  beast_http::request<beast_http::string_body> req{beast_http::verb::post, "/beast?q", 11};
  req.set(beast_http::field::host, "localhost");
  req.set("X-Test", "b");
  req.body() = "payload";
  req.prepare_payload();
  beast_http::write(socket, req);
  boost::beast::flat_buffer buffer;
  beast_http::response<beast_http::string_body> res;
  beast_http::read(socket, buffer, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "POST /beast?q|b|payload");
  EXPECT_EQ(res[beast_http::field::server], "dspark");
}

TEST(HttpBasic, RequestCarriesRemoteAddressAndLowerCasedHeaders) {
  std::string remote;
  std::vector<std::pair<std::string, std::string>> headers;
  TestServer server(fast_config(), [&](const Request& r) {
    remote = r.remote;
    headers = r.headers;
    return Reply{};
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: h\r\nX-MiXeD: Value\r\n\r\n"));
  ASSERT_TRUE(client.read_response());
  EXPECT_EQ(remote.rfind("127.0.0.1:", 0), 0u) << remote;
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[1].first, "x-mixed");
  EXPECT_EQ(headers[1].second, "Value");
}

}  // namespace
}  // namespace dspark::http::testing
