#ifndef BROKER_TLS_HOST_RESOLVER_H_
#define BROKER_TLS_HOST_RESOLVER_H_

// Name resolution for backend connects, off the I/O loops.
//
// Why not asio::ip::tcp::resolver: it runs getaddrinfo on one private thread per io_context,
// so one backend name whose DNS hangs queues every other connect on that loop behind it, and
// cancel() cannot interrupt a getaddrinfo that has started — no timer can end the wait.
//
// Why not asio's resolver on a separate io_context with several threads either: a thread stuck
// in getaddrinfo cannot be interrupted, so such a pool could never be joined at shutdown
// without waiting for the slowest name. Here resolutions run on a process-wide set of
// detached threads, started on demand and exiting when nothing is queued (an idle broker has
// none). A caller never waits for them: its connect timer ends the connect, and the late
// answer is delivered to a callback that finds nobody waiting.
//
// Bounds: at most kMaxResolverThreads threads; beyond that, requests queue until a thread is
// free (their connects still end on their own timers). Requests for the same host and port
// that arrive while one is queued or running share its single getaddrinfo, so a pool opening
// many sockets to one slow name occupies one thread, not one per socket.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace tlsbroker {

inline constexpr int kMaxResolverThreads = 16;

using ResolvedEndpoints = std::vector<asio::ip::tcp::endpoint>;
using ResolveCallback = absl::AnyInvocable<void(absl::StatusOr<ResolvedEndpoints>) &&>;

// Resolves `host` (a name or an IP literal) for TCP port `port`. `done` runs on a resolver
// thread — or at once on the caller's thread for an IP literal, which needs no lookup — so
// callers post to their own loop. A failure is kUnavailable with the resolver's message.
// Thread-safe.
void ResolveHost(const std::string& host, uint16_t port, ResolveCallback done);

// The blocking lookup resolver threads run by default: getaddrinfo (IPv4 and IPv6, TCP).
absl::StatusOr<ResolvedEndpoints> ResolveWithGetaddrinfo(const std::string& host, uint16_t port);

// Test hook: a blocking lookup that resolver threads call instead of getaddrinfo, for the
// whole process (IP literals never reach it). An empty function restores getaddrinfo. A
// lookup already running keeps the function it started with.
using ResolveFunction =
    std::function<absl::StatusOr<ResolvedEndpoints>(const std::string& host, uint16_t port)>;
void SetResolveFunctionForTesting(ResolveFunction resolve);

// Resolver threads alive now (tests prove that none outlives a released lookup).
int ResolverThreadsForTesting();

}  // namespace tlsbroker

#endif  // BROKER_TLS_HOST_RESOLVER_H_
