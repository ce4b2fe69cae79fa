#include "response_writer.h"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <utility>

#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace dspark::http::detail {

namespace beast_http = boost::beast::http;
using BeastResponse = beast_http::response<beast_http::string_body>;

namespace {

// RFC 9110 IMF-fixdate, written without the locale-dependent strftime names.
std::string http_date() {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return text;
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out;
}

bool lower_equals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  }
  return true;
}

bool has_line_break(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

bool body_forbidden(int status) {
  return status < 200 || status == 204 || status == 304;
}

// Builds the message head; the transport owns framing, so the handler's Content-Length,
// Transfer-Encoding and Connection headers are dropped ("Connection: close" is honoured).
BeastResponse build(const Response& response, ReplyContext& ctx) {
  int status = response.status;
  if (status < 200 || status > 999) status = 500;
  BeastResponse res;
  res.version(ctx.version);
  res.result(static_cast<unsigned>(status));
  res.set(beast_http::field::server, "dspark");
  res.set(beast_http::field::date, http_date());
  res.set(beast_http::field::content_type,
          response.content_type.empty() || has_line_break(response.content_type)
              ? std::string("application/octet-stream")
              : response.content_type);
  for (const HeaderList* list : {&std::as_const(ctx.extra_headers), &response.headers}) {
    for (const auto& [name, value] : *list) {
      if (name.empty() || has_line_break(name) || has_line_break(value)) continue;
      if (lower_equals(name, "connection")) {
        if (lower_equals(value, "close")) ctx.keep_alive = false;
        continue;
      }
      if (lower_equals(name, "content-length") || lower_equals(name, "transfer-encoding")) continue;
      res.insert(name, value);
    }
  }
  res.keep_alive(ctx.keep_alive);
  return res;
}

template <class Buffers>
bool write_all(SocketStream& stream, const Buffers& buffers, std::chrono::milliseconds timeout) {
  stream.set_deadline(Clock::now() + timeout);
  boost::system::error_code ec;
  boost::asio::write(stream, buffers, ec);
  return !ec;
}

}  // namespace

std::string error_body(int status, std::string_view message) {
  const char* type = status >= 500 ? "server_error" : "invalid_request_error";
  return "{\"error\":{\"message\":\"" + json_escape(message) + "\",\"type\":\"" + type +
         "\",\"code\":" + std::to_string(status) + "}}";
}

Response error_response(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = error_body(status, message);
  return r;
}

namespace {

BeastResponse build_complete(const Response& response, ReplyContext& ctx) {
  BeastResponse res = build(response, ctx);
  if (body_forbidden(res.result_int())) return res;
  res.content_length(response.body.size());
  if (!ctx.head_only) res.body() = response.body;
  return res;
}

}  // namespace

std::string serialize_response(const Response& response, ReplyContext& ctx) {
  BeastResponse res = build_complete(response, ctx);
  std::string out;
  beast_http::response_serializer<beast_http::string_body> sr(res);
  sr.split(false);
  boost::system::error_code ec;
  while (!sr.is_done() && !ec) {
    sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
      size_t n = 0;
      for (auto it = boost::asio::buffer_sequence_begin(buffers);
           it != boost::asio::buffer_sequence_end(buffers); ++it) {
        boost::asio::const_buffer b = *it;
        out.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      sr.consume(n);
    });
  }
  return out;
}

bool send_response(SocketStream& stream, const Response& response, ReplyContext& ctx,
                   std::chrono::milliseconds timeout) {
  BeastResponse res = build_complete(response, ctx);
  stream.set_deadline(Clock::now() + timeout);
  boost::system::error_code ec;
  beast_http::response_serializer<beast_http::string_body> sr(res);
  if (ctx.head_only) {
    beast_http::write_header(stream, sr, ec);
  } else {
    beast_http::write(stream, sr, ec);
  }
  return !ec;
}

bool send_stream_head(SocketStream& stream, const Response& head, ReplyContext& ctx,
                      std::chrono::milliseconds timeout) {
  BeastResponse res = build(head, ctx);
  if (ctx.version >= 11) {
    res.chunked(true);
  } else {
    // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
    ctx.keep_alive = false;
    res.keep_alive(false);
  }
  stream.set_deadline(Clock::now() + timeout);
  boost::system::error_code ec;
  beast_http::response_serializer<beast_http::string_body> sr(res);
  beast_http::write_header(stream, sr, ec);
  return !ec;
}

bool ChunkWriter::write(std::string_view data) {
  if (failed_ || peer_gone_()) {
    failed_ = true;
    return false;
  }
  // An empty chunk would end the body; there is nothing to send.
  if (data.empty()) return true;
  auto buffer = boost::asio::buffer(data.data(), data.size());
  bool ok = chunked_ ? write_all(stream_, beast_http::make_chunk(buffer), timeout_)
                     : write_all(stream_, buffer, timeout_);
  if (!ok) failed_ = true;
  return ok;
}

bool ChunkWriter::finish() {
  if (failed_) return false;
  if (!chunked_) return true;
  if (!write_all(stream_, beast_http::make_chunk_last(), timeout_)) failed_ = true;
  return !failed_;
}

}  // namespace dspark::http::detail
