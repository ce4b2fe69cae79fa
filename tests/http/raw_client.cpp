#include "raw_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>

namespace dspark::http::testing {

namespace {

using Clock = std::chrono::steady_clock;

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// One chunk at the front of `data`: kComplete with its payload ("" for the last chunk, whose
// trailer section is consumed too).
Parse parse_chunk(std::string_view data, std::string& payload, size_t& consumed) {
  size_t eol = data.find("\r\n");
  if (eol == std::string_view::npos)
    return data.size() > 64 ? Parse::kMalformed : Parse::kIncomplete;
  std::string_view size_text = data.substr(0, eol);
  size_text = size_text.substr(0, size_text.find(';'));
  size_t size = 0;
  auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
  if (ec != std::errc() || end != size_text.data() + size_text.size() || size_text.empty()) {
    return Parse::kMalformed;
  }
  size_t pos = eol + 2;
  if (size == 0) {
    // Trailer fields, then an empty line.
    for (;;) {
      size_t line_end = data.find("\r\n", pos);
      if (line_end == std::string_view::npos) return Parse::kIncomplete;
      bool empty = line_end == pos;
      pos = line_end + 2;
      if (empty) break;
    }
    payload.clear();
    consumed = pos;
    return Parse::kComplete;
  }
  if (data.size() < pos + size + 2) return Parse::kIncomplete;
  if (data.substr(pos + size, 2) != "\r\n") return Parse::kMalformed;
  payload = std::string(data.substr(pos, size));
  consumed = pos + size + 2;
  return Parse::kComplete;
}

}  // namespace

const std::string* RawResponse::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

Parse parse_response(std::string_view data, bool head_only, RawResponse& out, size_t& consumed) {
  out = RawResponse{};
  size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    // Still valid so far only if it starts like a status line.
    std::string_view prefix = data.substr(0, 9);
    return std::string_view("HTTP/1.1 ").substr(0, prefix.size()) == prefix ||
                   std::string_view("HTTP/1.0 ").substr(0, prefix.size()) == prefix
               ? Parse::kIncomplete
               : Parse::kMalformed;
  }
  std::string_view head = data.substr(0, head_end + 2);
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 ||
      (status_line.substr(0, 9) != "HTTP/1.1 " && status_line.substr(0, 9) != "HTTP/1.0 ")) {
    return Parse::kMalformed;
  }
  out.version = std::string(status_line.substr(0, 8));
  for (size_t i = 9; i < 12; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(status_line[i]))) return Parse::kMalformed;
    out.status = out.status * 10 + (status_line[i] - '0');
  }
  if (status_line.size() > 12 && status_line[12] != ' ') return Parse::kMalformed;
  for (size_t pos = line_end + 2; pos < head.size();) {
    size_t eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return Parse::kMalformed;
    for (char c : line.substr(0, colon)) {
      if (!is_token_char(c)) return Parse::kMalformed;
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.headers.emplace_back(lower(line.substr(0, colon)), std::string(value));
    pos = eol + 2;
  }
  size_t pos = head_end + 4;
  if (out.status == 100) {
    consumed = pos;
    return Parse::kComplete;
  }
  // What every final response from the transport carries.
  const std::string* server = out.header("server");
  if (server == nullptr || *server != "dspark" || out.header("content-type") == nullptr) {
    return Parse::kMalformed;
  }
  const std::string* te = out.header("transfer-encoding");
  const std::string* cl = out.header("content-length");
  out.chunked = te != nullptr && lower(*te) == "chunked";
  if (head_only) {
    consumed = pos;
    return Parse::kComplete;
  }
  if (out.chunked) {
    for (;;) {
      std::string payload;
      size_t used = 0;
      Parse p = parse_chunk(data.substr(pos), payload, used);
      if (p != Parse::kComplete) return p;
      pos += used;
      if (payload.empty()) break;
      out.body += payload;
    }
    consumed = pos;
    return Parse::kComplete;
  }
  if (cl == nullptr) {
    if (out.status == 204 || out.status == 304) {
      consumed = pos;
      return Parse::kComplete;
    }
    return Parse::kMalformed;  // the transport never ends a complete response by closing
  }
  size_t length = 0;
  auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), length);
  if (ec != std::errc() || end != cl->data() + cl->size()) return Parse::kMalformed;
  if (data.size() < pos + length) return Parse::kIncomplete;
  out.body = std::string(data.substr(pos, length));
  consumed = pos + length;
  return Parse::kComplete;
}

RawClient::RawClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) close();
}

RawClient::~RawClient() {
  close();
}

void RawClient::set_receive_buffer(int bytes) {
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

bool RawClient::send(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void RawClient::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::fill(Clock::time_point deadline) {
  if (eof_ || fd_ < 0) return false;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char data[16384];
  ssize_t n = ::recv(fd_, data, sizeof data, 0);
  if (n <= 0) {
    eof_ = true;  // EOF or reset: nothing more will come
    return false;
  }
  buffer_.append(data, static_cast<size_t>(n));
  return true;
}

std::optional<RawResponse> RawClient::read_response(bool head_only) {
  auto deadline = Clock::now() + timeout_;
  for (;;) {
    RawResponse response;
    size_t consumed = 0;
    Parse p = parse_response(buffer_, head_only, response, consumed);
    if (p == Parse::kMalformed) return std::nullopt;
    if (p == Parse::kComplete) {
      buffer_.erase(0, consumed);
      return response;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::optional<std::string> RawClient::read_chunk() {
  auto deadline = Clock::now() + timeout_;
  for (;;) {
    std::string payload;
    size_t consumed = 0;
    Parse p = parse_chunk(buffer_, payload, consumed);
    if (p == Parse::kMalformed) return std::nullopt;
    if (p == Parse::kComplete) {
      buffer_.erase(0, consumed);
      return payload;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::optional<std::string> RawClient::read_until_close() {
  auto deadline = Clock::now() + timeout_;
  while (!eof_) {
    if (!fill(deadline) && !eof_) return std::nullopt;
  }
  std::string all = std::move(buffer_);
  buffer_.clear();
  return all;
}

std::string make_request(std::string_view method, std::string_view path, std::string_view body,
                         std::string_view extra_headers) {
  std::string r = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n";
  r += extra_headers;
  if (!body.empty() || method == "POST")
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += "\r\n";
  r += body;
  return r;
}

}  // namespace dspark::http::testing
