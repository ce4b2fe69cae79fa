// Blocking-with-deadline I/O on a non-blocking TCP socket: every wait is a poll() bounded by a
// deadline, so a slow or silent peer can hold a connection thread no longer than its timeout.
// SocketStream models Beast's SyncReadStream/SyncWriteStream so Beast parses and serializes
// directly over the raw descriptor.
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstddef>

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

namespace dspark::http::detail {

using Clock = std::chrono::steady_clock;

enum class Ready { kReady, kTimeout, kWoken, kError };

// Waits until `fd` reports any of `events` (or hang-up/error), the deadline passes, or `wake_fd`
// (when >= 0) becomes readable; wake_fd wins when both are ready.
Ready wait_fd(int fd, short events, Clock::time_point deadline, int wake_fd = -1);

// Non-blocking: true once the peer has sent FIN or reset the connection. Bytes the peer sent
// before (a pipelined request) do not count.
bool peer_closed(int fd);

// Shuts down the sending side, then discards what the peer still sends for a short while so
// that closing does not reset the connection before the peer has read our last response.
void lingering_close(int fd, std::chrono::milliseconds limit);

class SocketStream {
 public:
  explicit SocketStream(int fd) : fd_(fd) {}

  // Reads and writes fail with boost::asio::error::timed_out once this passes.
  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b = *it;
      if (b.size() > 0) return recv_some(b.data(), b.size(), ec);
    }
    ec = {};
    return 0;
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    std::array<iovec, 16> iov{};
    size_t count = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
      boost::asio::const_buffer b = *it;
      if (b.size() == 0) continue;
      iov[count].iov_base = const_cast<void*>(b.data());
      iov[count].iov_len = b.size();
      ++count;
    }
    if (count == 0) {
      ec = {};
      return 0;
    }
    return send_some(iov.data(), count, ec);
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  size_t recv_some(void* data, size_t size, boost::system::error_code& ec);
  size_t send_some(const iovec* iov, size_t count, boost::system::error_code& ec);

  int fd_;
  Clock::time_point deadline_ = Clock::time_point::max();
};

}  // namespace dspark::http::detail
