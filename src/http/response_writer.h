// Serializes Responses with Beast: whole responses with Content-Length, and streamed ones with
// chunked transfer encoding (or, for HTTP/1.0 peers, a body that ends when the connection closes).
// Every response carries Server, Date, Content-Type and its framing headers.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dspark/http.h"
#include "socket_io.h"

namespace dspark::http::detail {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// What the response must agree with about the request it answers.
struct ReplyContext {
  unsigned version = 11;     // 10 or 11: HTTP/1.0 or HTTP/1.1
  bool head_only = false;    // HEAD request: send the headers, never a body
  bool keep_alive = false;   // in: the request allows it; out: the connection stays open after
  HeaderList extra_headers;  // added by the transport (CORS)
};

// {"error":{"message":...,"type":...,"code":status}}, the shape OpenAI clients expect.
std::string error_body(int status, std::string_view message);
Response error_response(int status, std::string_view message);

// Complete response as bytes (for answers sent without a connection thread).
std::string serialize_response(const Response& response, ReplyContext& ctx);

// Sends a complete response within `timeout`; false when the peer is gone or the write timed out.
bool send_response(SocketStream& stream, const Response& response, ReplyContext& ctx,
                   std::chrono::milliseconds timeout);

// Sends the head of a streamed response; the body follows through a ChunkWriter.
bool send_stream_head(SocketStream& stream, const Response& head, ReplyContext& ctx,
                      std::chrono::milliseconds timeout);

// Writes a streamed body: one flushed chunk per write (raw bytes for HTTP/1.0).
class ChunkWriter final : public StreamWriter {
 public:
  ChunkWriter(SocketStream& stream, bool chunked, std::chrono::milliseconds timeout,
              std::function<bool()> peer_gone)
      : stream_(stream), chunked_(chunked), timeout_(timeout), peer_gone_(std::move(peer_gone)) {}

  bool write(std::string_view data) override;
  bool disconnected() override { return failed_ || peer_gone_(); }

  // Ends the body (last chunk); false when the body could not be completed.
  bool finish();
  bool failed() const { return failed_; }

 private:
  SocketStream& stream_;
  bool chunked_;
  std::chrono::milliseconds timeout_;
  std::function<bool()> peer_gone_;
  bool failed_ = false;
};

}  // namespace dspark::http::detail
