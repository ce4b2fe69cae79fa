// One client connection, served on its own thread: read a request under the read deadline,
// hand it to the handler, write the reply, repeat while keep-alive allows.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include "cors.h"
#include "dspark/http.h"
#include "socket_io.h"

namespace dspark::http::detail {

// State every connection reads; owned by the server, which outlives its connection threads.
struct ServerShared {
  ServerShared(ServerConfig c, Handler h)
      : config(std::move(c)), handler(std::move(h)), cors(config.cors_origins) {}

  const ServerConfig config;
  const Handler handler;
  const CorsPolicy cors;
  std::atomic<bool> stopping{false};
  int wake_fd = -1;  // readable once shutdown has begun (never drained)
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Takes ownership of `fd` (non-blocking, connected).
  Connection(const ServerShared& shared, int fd, std::string remote, Clock::time_point accepted)
      : shared_(shared), fd_(fd), stream_(fd), remote_(std::move(remote)), accepted_(accepted) {}
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves requests until the connection ends, then closes the socket. Runs on its own thread.
  void serve();
  // From another thread: shuts the socket down so blocked reads and writes fail at once, and
  // makes disconnected() true. The owning thread still closes the descriptor.
  void force_close();

 private:
  using BeastRequest = boost::beast::http::request<boost::beast::http::string_body>;

  // One request/response exchange; false when the connection must end.
  bool serve_one(boost::beast::flat_buffer& buffer, Clock::time_point deadline);
  bool fail_read(const boost::system::error_code& ec);
  bool reply_error(int status, const std::string& message);
  bool dispatch(BeastRequest&& msg);
  Reply call_handler(const Request& request) const;
  bool peer_gone();
  void close_fd();

  const ServerShared& shared_;
  std::mutex fd_mu_;  // guards fd_ between close_fd() and force_close()
  int fd_;
  std::atomic<bool> forced_{false};
  SocketStream stream_;
  std::string remote_;
  Clock::time_point accepted_;
};

}  // namespace dspark::http::detail
