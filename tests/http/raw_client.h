// A small HTTP/1.1 client over a raw POSIX socket for the transport tests: it sends arbitrary
// bytes (malformed, slow, pipelined) and parses responses strictly, so a malformed response
// from the server fails the test.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dspark::http::testing {

struct RawResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  bool chunked = false;

  const std::string* header(std::string_view lower_name) const;
};

enum class Parse { kComplete, kIncomplete, kMalformed };

// Parses one response from the front of `data`. head_only: the head alone (a HEAD reply, or a
// streamed reply whose chunks are read separately). On kComplete, `consumed` is its length.
Parse parse_response(std::string_view data, bool head_only, RawResponse& out, size_t& consumed);

class RawClient {
 public:
  explicit RawClient(uint16_t port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Each read below waits at most this long.
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // Shrinks the receive buffer (before connecting to a server that writes a lot).
  void set_receive_buffer(int bytes);

  bool send(std::string_view data);  // every byte, or false
  void shutdown_write();
  void close();

  // One complete response; nullopt on timeout, close before it ended, or malformed bytes.
  std::optional<RawResponse> read_response(bool head_only = false);
  // The head of a streamed response, then its chunks one by one ("" is the last chunk).
  std::optional<RawResponse> read_head() { return read_response(true); }
  std::optional<std::string> read_chunk();
  // Reads until the server closes (EOF or reset); nullopt if still open after the timeout.
  std::optional<std::string> read_until_close();
  // Bytes received but not consumed by the reads above.
  const std::string& pending() const { return buffer_; }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);  // false: closed, error or timeout

  int fd_ = -1;
  std::chrono::milliseconds timeout_{2000};
  std::string buffer_;
  bool eof_ = false;
};

// "METHOD path HTTP/1.1" with Host, optional extra header lines and a Content-Length body.
std::string make_request(std::string_view method, std::string_view path, std::string_view body = {},
                         std::string_view extra_headers = {});

}  // namespace dspark::http::testing
