#ifndef BROKER_TLS_TCP_KEEPALIVE_H_
#define BROKER_TLS_TCP_KEEPALIVE_H_

// TCP keepalive on a connected backend socket: a connection that a firewall or NAT dropped
// while the socket sat idle in the pool is then found by the kernel's probes (the idle watch
// sees the error and the pool replaces the socket), not by the next lease.

#include "absl/status/status.h"
#include "broker/config/options.h"

namespace tlsbroker {

// Sets SO_KEEPALIVE and, when enabled, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT on `fd`.
// Disabled options turn SO_KEEPALIVE off. An error names the option the kernel refused.
absl::Status ApplyTcpKeepalive(int fd, const TcpKeepaliveOptions& options);

}  // namespace tlsbroker

#endif  // BROKER_TLS_TCP_KEEPALIVE_H_
