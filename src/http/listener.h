// Listening socket setup and peer naming (POSIX sockets).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "dspark/status.h"

namespace dspark::http::detail {

// A non-blocking listening socket bound to host:port (IPv4 or IPv6; port 0 picks a free one).
Result<int> open_listener(const std::string& host, uint16_t port);
uint16_t local_port(int fd);
// "1.2.3.4:5678" or "[::1]:5678".
std::string address_text(const sockaddr_storage& address);

}  // namespace dspark::http::detail
