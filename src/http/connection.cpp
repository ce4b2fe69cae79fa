#include "connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <exception>
#include <limits>

#include <boost/asio/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "response_writer.h"

namespace dspark::http::detail {

namespace beast_http = boost::beast::http;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Short: it only lets the peer read an error response before the socket is closed.
std::chrono::milliseconds linger_limit(const ServerConfig& config) {
  return std::min(config.read_timeout, std::chrono::milliseconds(1000));
}

std::string_view view(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace

Connection::~Connection() {
  close_fd();
}

void Connection::close_fd() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Connection::force_close() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  forced_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

bool Connection::peer_gone() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  return forced_ || fd_ < 0 || peer_closed(fd_);
}

void Connection::serve() {
  const ServerConfig& config = shared_.config;
  boost::beast::flat_buffer buffer;
  // The first request must arrive within read_timeout of the accept; later ones may wait for
  // idle_timeout and then have read_timeout from their first byte.
  Clock::time_point deadline = accepted_ + config.read_timeout;
  bool first = true;
  for (;;) {
    if (buffer.size() == 0) {
      if (shared_.stopping) break;
      Clock::time_point until = first ? deadline : Clock::now() + config.idle_timeout;
      if (wait_fd(fd_, POLLIN, until, shared_.wake_fd) != Ready::kReady) break;
    }
    if (!first) deadline = Clock::now() + config.read_timeout;
    first = false;
    if (!serve_one(buffer, deadline)) break;
  }
  close_fd();
}

bool Connection::serve_one(boost::beast::flat_buffer& buffer, Clock::time_point deadline) {
  const ServerConfig& config = shared_.config;
  beast_http::request_parser<beast_http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(config.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(static_cast<std::uint64_t>(config.max_body_bytes));
  boost::system::error_code ec;
  stream_.set_deadline(deadline);
  beast_http::read_header(stream_, buffer, parser, ec);
  if (ec) return fail_read(ec);
  if (shared_.stopping) return reply_error(503, "server is shutting down");
  if (!parser.is_done()) {
    const auto& msg = parser.get();
    if (msg.version() >= 11 &&
        boost::beast::iequals(msg[beast_http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.set_deadline(Clock::now() + config.write_timeout);
      boost::asio::write(stream_, boost::asio::buffer(kContinue.data(), kContinue.size()), ec);
      if (ec) return false;
    }
    stream_.set_deadline(deadline);
    beast_http::read(stream_, buffer, parser, ec);
    if (ec) return fail_read(ec);
  }
  return dispatch(parser.release());
}

bool Connection::fail_read(const boost::system::error_code& ec) {
  const ServerConfig& config = shared_.config;
  if (ec == beast_http::error::end_of_stream || ec == beast_http::error::partial_message ||
      ec == boost::asio::error::eof) {
    return false;  // the client closed the connection
  }
  if (ec == boost::asio::error::timed_out) {
    return reply_error(408, "request not received within the read timeout (" +
                                std::to_string(config.read_timeout.count()) + " ms)");
  }
  if (ec == beast_http::error::header_limit) {
    return reply_error(431, "request header fields too large (limit " +
                                std::to_string(config.max_header_bytes) + " bytes)");
  }
  if (ec == beast_http::error::body_limit) {
    return reply_error(
        413, "request body too large (limit " + std::to_string(config.max_body_bytes) + " bytes)");
  }
  if (ec.category() == beast_http::make_error_code(beast_http::error::bad_method).category()) {
    return reply_error(400, "malformed HTTP request: " + ec.message());
  }
  return false;  // socket error: the peer is gone
}

bool Connection::reply_error(int status, const std::string& message) {
  ReplyContext ctx;
  send_response(stream_, error_response(status, message), ctx, shared_.config.write_timeout);
  // Only this thread closes fd_, so it is read here without the lock (which force_close needs).
  if (!forced_) lingering_close(fd_, linger_limit(shared_.config));
  return false;
}

Reply Connection::call_handler(const Request& request) const {
  try {
    return shared_.handler(request);
  } catch (const std::exception& e) {
    return Reply{error_response(500, std::string("internal error: ") + e.what()), {}};
  } catch (...) {
    return Reply{error_response(500, "internal error"), {}};
  }
}

bool Connection::dispatch(BeastRequest&& msg) {
  const ServerConfig& config = shared_.config;
  Request request;
  request.method = std::string(view(msg.method_string()));
  std::string_view target = view(msg.target());
  size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = std::string(target.substr(question + 1));
  for (const auto& field : msg) {
    request.headers.emplace_back(lower(view(field.name_string())),
                                 std::string(view(field.value())));
  }
  request.body = std::move(msg.body());
  request.remote = remote_;
  auto self = shared_from_this();
  request.disconnected = [self] { return self->peer_gone(); };

  ReplyContext ctx;
  ctx.version = msg.version() == 10 ? 10 : 11;
  ctx.head_only = msg.method() == beast_http::verb::head;
  ctx.keep_alive = msg.keep_alive();
  ctx.extra_headers = shared_.cors.response_headers(request.header("origin"));

  Reply reply;
  if (shared_.cors.is_preflight(request)) {
    reply.head = shared_.cors.preflight(request);
  } else {
    reply = call_handler(request);
  }
  if (shared_.stopping) ctx.keep_alive = false;

  if (!reply.stream) {
    return send_response(stream_, reply.head, ctx, config.write_timeout) && ctx.keep_alive;
  }
  if (!send_stream_head(stream_, reply.head, ctx, config.write_timeout)) return false;
  if (ctx.head_only) return ctx.keep_alive;
  ChunkWriter writer(stream_, ctx.version >= 11, config.write_timeout,
                     [self] { return self->peer_gone(); });
  try {
    reply.stream(writer);
  } catch (...) {
    return false;  // the head is out: ending the connection tells the client the body is cut
  }
  return writer.finish() && ctx.keep_alive;
}

}  // namespace dspark::http::detail
