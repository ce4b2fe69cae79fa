// Random and mutated raw requests: the server must never crash, and every connection must end
// with zero or more well-formed responses followed by a clean close.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "http/raw_client.h"
#include "http/test_server.h"

namespace dspark::http::testing {
namespace {

using namespace std::chrono_literals;

Reply fuzz_handler(const Request& r) {
  Reply reply;
  reply.head.content_type = "text/plain";
  reply.head.body = r.method + " " + r.path + " " + std::to_string(r.body.size());
  if (r.path == "/throw") throw std::runtime_error("boom");
  return reply;
}

const std::vector<std::string>& seeds() {
  static const std::vector<std::string> kSeeds = {
      make_request("GET", "/v1/models"),
      make_request("POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[]}",
                   "Content-Type: application/json\r\nAuthorization: Bearer k\r\n"),
      "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      make_request("GET", "/a") + make_request("POST", "/b", "xyz"),
      "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      make_request("OPTIONS", "/", "",
                   "Origin: http://o\r\nAccess-Control-Request-Method: POST\r\n"),
      make_request("GET", "/throw"),
      "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
  };
  return kSeeds;
}

std::string random_bytes(std::mt19937& rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(rng), '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

std::string mutate(std::mt19937& rng, std::string s) {
  static const std::vector<std::string> kTokens = {"\r\n",
                                                   "\r\n\r\n",
                                                   ":",
                                                   " ",
                                                   "\n",
                                                   "\r",
                                                   "Content-Length: 99999999999999999999\r\n",
                                                   "Transfer-Encoding: chunked\r\n",
                                                   "ffffffffffffffff\r\n",
                                                   "0\r\n\r\n",
                                                   "\0",
                                                   "HTTP/1.1",
                                                   "Content-Length: 5\r\n",
                                                   "%00",
                                                   "\t",
                                                   "\x80\xff",
                                                   "Connection: close\r\n"};
  std::uniform_int_distribution<int> ops(1, 6);
  int count = ops(rng);
  for (int i = 0; i < count; ++i) {
    size_t pos = s.empty() ? 0 : std::uniform_int_distribution<size_t>(0, s.size())(rng);
    switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
      case 0:  // flip a byte
        if (!s.empty()) s[pos % s.size()] = static_cast<char>(rng());
        break;
      case 1:  // insert a token
        s.insert(pos, kTokens[rng() % kTokens.size()]);
        break;
      case 2:  // delete a range
        s.erase(pos, rng() % 16);
        break;
      case 3:  // duplicate a range
        s.insert(pos, s.substr(pos, rng() % 64));
        break;
      case 4:  // truncate
        s.resize(pos);
        break;
      default:  // insert random bytes
        s.insert(pos, random_bytes(rng, 8));
    }
  }
  return s;
}

// The server's whole output on one connection: well-formed responses, then the close.
void check_exchange(uint16_t port, const std::string& input, bool half_close) {
  RawClient client(port);
  ASSERT_TRUE(client.connected());
  client.send(input);  // may fail once the server has answered and closed
  if (half_close) client.shutdown_write();
  client.set_timeout(3s);
  auto all = client.read_until_close();
  ASSERT_TRUE(all) << "connection left open for input: " << ::testing::PrintToString(input);
  std::string_view rest = *all;
  while (!rest.empty()) {
    RawResponse response;
    size_t consumed = 0;
    Parse p = parse_response(rest, false, response, consumed);
    ASSERT_EQ(p, Parse::kComplete) << "bad output " << ::testing::PrintToString(std::string(rest))
                                   << " for input " << ::testing::PrintToString(input);
    EXPECT_TRUE(response.status == 100 || (response.status >= 200 && response.status < 600));
    rest.remove_prefix(consumed);
  }
}

class HttpFuzz : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config = fast_config();
    config.read_timeout = 100ms;
    config.idle_timeout = 100ms;
    config.cors_origins = {"*"};
    server_ = std::make_unique<TestServer>(config, fuzz_handler);
  }
  void TearDown() override {
    // Still serving after everything it was fed.
    RawClient client(server_->port());
    ASSERT_TRUE(client.send(make_request("GET", "/alive")));
    auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  std::unique_ptr<TestServer> server_;
};

// A HEAD reply has no body, which a byte-level checker cannot tell from a truncated one.
bool mentions_head(const std::string& s) {
  return s.find("HEAD") != std::string::npos;
}

TEST_F(HttpFuzz, RandomBytes) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 150; ++i) {
    std::string input = random_bytes(rng, 600);
    if (i % 3 == 0) input = "GET / HTTP/1.1\r\n" + input;
    if (mentions_head(input)) continue;
    check_exchange(server_->port(), input, true);
  }
}

TEST_F(HttpFuzz, MutatedRequests) {
  std::mt19937 rng(99);
  for (int i = 0; i < 400; ++i) {
    std::string input = mutate(rng, seeds()[rng() % seeds().size()]);
    if (mentions_head(input)) continue;
    check_exchange(server_->port(), input, true);
  }
}

TEST_F(HttpFuzz, MutatedRequestsLeftOpenEndByTimeout) {
  std::mt19937 rng(7);
  for (int i = 0; i < 12; ++i) {
    std::string input = mutate(rng, seeds()[rng() % seeds().size()]);
    if (mentions_head(input)) continue;
    check_exchange(server_->port(), input, false);
  }
}

}  // namespace
}  // namespace dspark::http::testing
