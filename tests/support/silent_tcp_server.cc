#include "tests/support/silent_tcp_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace tlsbroker::testutil {

SilentTcpServer::SilentTcpServer() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 16) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Close();
    return;
  }
  port_ = ntohs(addr.sin_port);
}

SilentTcpServer::~SilentTcpServer() { Close(); }

std::string SilentTcpServer::url() const { return absl::StrCat("http://127.0.0.1:", port_, "/"); }

bool SilentTcpServer::WaitForConnection(absl::Duration timeout) {
  if (listen_fd_ < 0) return false;
  pollfd p{listen_fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) return false;
  const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return false;
  held_.push_back(fd);
  return true;
}

void SilentTcpServer::Close() {
  for (int fd : held_) close(fd);
  held_.clear();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

}  // namespace tlsbroker::testutil
