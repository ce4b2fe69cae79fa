// HTTP/1.1 transport (Boost.Beast): keep-alive connections, one thread per connection so a
// handler may block (streaming a generation), limits on header and body size, read/idle/write
// timeouts (a slow client never holds more than its own connection), CORS, graceful shutdown.
// It knows nothing of JSON or the OpenAI API: a Handler turns a Request into a Reply.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dspark/status.h"

namespace dspark::http {

struct Request {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // target without the query string
  std::string query;                                         // after '?', raw ("" when none)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;
  std::string remote;  // peer address:port
  // True once the client has closed or reset the connection (checked without blocking); lets a
  // handler that waits on a long generation give up early. Safe to call from any thread, also
  // after the handler returned. Bytes of a pipelined next request do not count as a close.
  std::function<bool()> disconnected;

  const std::string* header(std::string_view lower_name) const;  // nullptr when absent
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  // Extra headers (Retry-After, ...). Framing is the transport's: Content-Length,
  // Transfer-Encoding and Connection given here are dropped ("Connection: close" is honoured).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Writes a streamed body from the handler's thread.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Sends data now (flushed, chunked encoding). false: the client is gone or the write timed out;
  // stop producing.
  virtual bool write(std::string_view data) = 0;
  virtual bool disconnected() = 0;  // as Request::disconnected
};

// A complete response, or a streamed one: head's status and headers are sent first, then
// stream(writer) runs on the connection's thread and writes the body; the response ends when it
// returns.
struct Reply {
  Response head;
  std::function<void(StreamWriter&)> stream;  // empty: head.body is the whole body
};

using Handler = std::function<Reply(const Request&)>;

struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;                            // 0: any free port (see Server::port)
  size_t max_header_bytes = 16 * 1024;             // larger: 431
  size_t max_body_bytes = 8 * 1024 * 1024;         // larger: 413
  std::chrono::milliseconds read_timeout{30000};   // a whole request must arrive within this
  std::chrono::milliseconds idle_timeout{60000};   // keep-alive connection with no request
  std::chrono::milliseconds write_timeout{30000};  // one write to a client that does not read
  int max_connections = 1024;                      // beyond: 503 and close
  // Origins allowed by CORS ("*": any); empty: no CORS headers. Preflight OPTIONS requests are
  // answered by the transport.
  std::vector<std::string> cors_origins;
};

class Server {
 public:
  // Binds and listens (errors name the address and the reason); serving starts with run().
  static Result<std::unique_ptr<Server>> create(ServerConfig config, Handler handler);
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;  // the bound port
  // Accepts and serves until shutdown; returns when every connection has ended.
  virtual void run() = 0;
  // Thread-safe, idempotent: stops accepting; requests already being handled continue (new ones
  // on open keep-alive connections get 503 and Connection: close); after grace, connections
  // still open are closed. run() then returns. A later call may shorten the grace, never extend
  // it. Does not block, so a handler may call it; not async-signal-safe (call it from a thread
  // that waits for signals, not from a signal handler).
  virtual void shutdown(std::chrono::milliseconds grace) = 0;
  virtual int active_connections() const = 0;
};

}  // namespace dspark::http
