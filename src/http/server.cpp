// The acceptor: one thread (run()) accepts connections and starts a thread per connection,
// refuses connections beyond the limit with 503, joins connection threads as they end, and on
// shutdown drains the connections within the grace period before forcing them closed.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <system_error>
#include <thread>
#include <vector>

#include "connection.h"
#include "dspark/http.h"
#include "listener.h"
#include "response_writer.h"

namespace dspark::http {

namespace {

using detail::Clock;

void signal_eventfd(int fd) {
  uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(fd, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerConfig config, Handler handler, int listen_fd, int wake_fd, int reap_fd)
      : shared_(std::move(config), std::move(handler)),
        listen_fd_(listen_fd),
        reap_fd_(reap_fd),
        port_(detail::local_port(listen_fd)) {
    shared_.wake_fd = wake_fd;
  }

  ~ServerImpl() override {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    ::close(shared_.wake_fd);
    ::close(reap_fd_);
  }

  uint16_t port() const override { return port_; }
  int active_connections() const override { return active_.load(); }
  void run() override;
  void shutdown(std::chrono::milliseconds grace) override;

 private:
  struct Slot {
    std::shared_ptr<detail::Connection> connection;
    std::thread thread;
  };

  // Accepts every pending connection; false when out of descriptors or memory (back off).
  bool accept_pending();
  void reject_busy(int fd);
  void start_connection(int fd, std::string remote);
  void connection_ended(uint64_t id);
  void join_ended();
  void drain();

  detail::ServerShared shared_;
  int listen_fd_;
  int reap_fd_;  // eventfd: a connection thread has ended and can be joined
  uint16_t port_;
  std::atomic<bool> ran_{false};
  std::atomic<int> active_{0};

  std::mutex mu_;
  std::condition_variable cv_;  // active_ dropped, or the shutdown deadline moved
  std::map<uint64_t, Slot> slots_;
  std::vector<uint64_t> ended_;
  uint64_t next_id_ = 0;
  bool shutdown_requested_ = false;
  Clock::time_point deadline_{};  // force-close time once shutdown was requested
};

void ServerImpl::run() {
  if (ran_.exchange(true)) return;
  bool backoff = false;
  for (;;) {
    pollfd fds[3] = {{shared_.wake_fd, POLLIN, 0}, {reap_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    // While out of descriptors, leave the listener alone for a moment instead of spinning.
    int rc = ::poll(fds, backoff ? 2 : 3, backoff ? 100 : -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) {
      uint64_t count;
      if (::read(reap_fd_, &count, sizeof count) < 0) count = 0;
      join_ended();
    }
    if (fds[0].revents != 0) break;
    backoff = !accept_pending();
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
  drain();
}

bool ServerImpl::accept_pending() {
  for (;;) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    // Streamed chunks are small and must leave at once.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (active_.load() >= shared_.config.max_connections || shared_.stopping) {
      reject_busy(fd);
    } else {
      start_connection(fd, detail::address_text(address));
    }
  }
}

// Answers 503 without a thread: the reply fits the socket buffer, so a non-blocking send does.
void ServerImpl::reject_busy(int fd) {
  Response response = detail::error_response(
      503, shared_.stopping ? "server is shutting down"
                            : "too many connections (limit " +
                                  std::to_string(shared_.config.max_connections) + ")");
  response.headers.emplace_back("Retry-After", "1");
  detail::ReplyContext ctx;
  std::string bytes = detail::serialize_response(response, ctx);
  char sink[4096];
  // Reading what already arrived keeps close() from resetting the connection.
  while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)sent;  // a peer that cannot take the reply just sees the connection close
  ::shutdown(fd, SHUT_WR);
  while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  ::close(fd);
}

void ServerImpl::start_connection(int fd, std::string remote) {
  auto connection =
      std::make_shared<detail::Connection>(shared_, fd, std::move(remote), Clock::now());
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  try {
    std::thread thread([this, connection, id] {
      connection->serve();
      connection_ended(id);
    });
    slots_.emplace(id, Slot{connection, std::move(thread)});
    ++active_;
  } catch (const std::system_error&) {
    // No thread to serve it: dropping the connection closes the socket.
  }
}

void ServerImpl::connection_ended(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_.push_back(id);
    --active_;
    cv_.notify_all();
  }
  signal_eventfd(reap_fd_);
}

void ServerImpl::join_ended() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t id : ended_) {
      auto it = slots_.find(id);
      if (it == slots_.end()) continue;
      threads.push_back(std::move(it->second.thread));
      slots_.erase(it);
    }
    ended_.clear();
  }
  for (auto& t : threads) t.join();
}

void ServerImpl::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  bool forced = false;
  while (active_.load() > 0) {
    if (!forced && Clock::now() >= deadline_) {
      // Shutting the sockets down wakes threads blocked in reads and writes; handlers see
      // disconnected() turn true.
      for (auto& [id, slot] : slots_) slot.connection->force_close();
      forced = true;
    }
    if (forced) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, deadline_);
    }
  }
  std::vector<std::thread> threads;
  for (auto& [id, slot] : slots_) threads.push_back(std::move(slot.thread));
  slots_.clear();
  ended_.clear();
  lock.unlock();
  for (auto& t : threads) t.join();
}

void ServerImpl::shutdown(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(mu_);
  Clock::time_point deadline = Clock::now() + grace;
  // A later call may shorten the grace period (a second Ctrl-C), never extend it.
  if (!shutdown_requested_ || deadline < deadline_) deadline_ = deadline;
  shutdown_requested_ = true;
  shared_.stopping = true;
  signal_eventfd(shared_.wake_fd);
  cv_.notify_all();
}

}  // namespace

Result<std::unique_ptr<Server>> Server::create(ServerConfig config, Handler handler) {
  if (!handler) return Error{"http server: no handler"};
  if (config.max_connections < 1) {
    return Error{"http server: max_connections must be at least 1, got " +
                 std::to_string(config.max_connections)};
  }
  using std::chrono::milliseconds;
  if (config.read_timeout <= milliseconds(0) || config.idle_timeout <= milliseconds(0) ||
      config.write_timeout <= milliseconds(0)) {
    return Error{"http server: read, idle and write timeouts must be positive"};
  }
  Result<int> listen_fd = detail::open_listener(config.host, config.port);
  if (!listen_fd) return listen_fd.error();
  int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int reap_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0 || reap_fd < 0) {
    std::string reason = std::strerror(errno);
    ::close(*listen_fd);
    if (wake_fd >= 0) ::close(wake_fd);
    if (reap_fd >= 0) ::close(reap_fd);
    return Error{"http server: cannot create eventfd: " + reason};
  }
  return std::unique_ptr<Server>(
      new ServerImpl(std::move(config), std::move(handler), *listen_fd, wake_fd, reap_fd));
}

}  // namespace dspark::http
