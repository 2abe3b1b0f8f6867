#include "broker/tls/tcp_keepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tlsbroker {
namespace {

absl::Status Set(int fd, int level, int name, const char* what, int value) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return absl::InternalError(absl::StrCat("setting ", what, " to ", value, ": ",
                                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyTcpKeepalive(int fd, const TcpKeepaliveOptions& options) {
  if (!options.enabled) return Set(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 0);
  // The loader keeps idle and interval in whole seconds within the kernel's limits.
  absl::Status status =
      Set(fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE",
          static_cast<int>(absl::ToInt64Seconds(options.idle)));
  if (status.ok()) {
    status = Set(fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL",
                 static_cast<int>(absl::ToInt64Seconds(options.interval)));
  }
  if (status.ok()) status = Set(fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", options.count);
  if (status.ok()) status = Set(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1);
  return status;
}

}  // namespace tlsbroker
