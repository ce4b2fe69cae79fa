#include "socket_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/error.hpp>

namespace dspark::http::detail {

namespace {

// poll() timeout in milliseconds for a deadline, rounded up so we never wake just before it.
int poll_timeout_ms(Clock::time_point deadline) {
  if (deadline == Clock::time_point::max()) return -1;
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

boost::system::error_code errno_code(int err) {
  return boost::system::error_code(err, boost::system::system_category());
}

// After a recv/send that failed with errno: true to try again (interrupted, or the socket became
// ready before the deadline); false with ec set when the error is final or the wait timed out.
bool may_retry(int fd, short events, Clock::time_point deadline, boost::system::error_code& ec) {
  if (errno == EINTR) return true;
  if (errno != EAGAIN && errno != EWOULDBLOCK) {
    ec = errno_code(errno);
    return false;
  }
  const Ready r = wait_fd(fd, events, deadline);
  if (r == Ready::kTimeout) {
    ec = boost::asio::error::timed_out;
    return false;
  }
  if (r == Ready::kError) {
    ec = errno_code(errno);
    return false;
  }
  return true;
}

}  // namespace

Ready wait_fd(int fd, short events, Clock::time_point deadline, int wake_fd) {
  pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
  nfds_t count = wake_fd >= 0 ? 2 : 1;
  for (;;) {
    int timeout = poll_timeout_ms(deadline);
    int rc = ::poll(fds, count, timeout);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Ready::kError;
    }
    if (count == 2 && fds[1].revents != 0) return Ready::kWoken;
    if (fds[0].revents != 0) return Ready::kReady;
    if (timeout == 0 || Clock::now() >= deadline) return Ready::kTimeout;
  }
}

bool peer_closed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, 0);
  } while (rc < 0 && errno == EINTR);
  return rc > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

void lingering_close(int fd, std::chrono::milliseconds limit) {
  ::shutdown(fd, SHUT_WR);
  auto deadline = Clock::now() + limit;
  char sink[4096];
  size_t discarded = 0;
  // Bounded in time and bytes: a peer that keeps sending gets reset afterwards.
  while (discarded < (1u << 20)) {
    ssize_t n = ::recv(fd, sink, sizeof sink, 0);
    if (n > 0) {
      discarded += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;
    if (wait_fd(fd, POLLIN, deadline) != Ready::kReady) return;
  }
}

size_t SocketStream::recv_some(void* data, size_t size, boost::system::error_code& ec) {
  for (;;) {
    ssize_t n = ::recv(fd_, data, size, 0);
    if (n > 0) {
      ec = {};
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      ec = boost::asio::error::eof;
      return 0;
    }
    if (!may_retry(fd_, POLLIN, deadline_, ec)) return 0;
  }
}

size_t SocketStream::send_some(const iovec* iov, size_t count, boost::system::error_code& ec) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      ec = {};
      return static_cast<size_t>(n);
    }
    if (!may_retry(fd_, POLLOUT, deadline_, ec)) return 0;
  }
}

}  // namespace dspark::http::detail
