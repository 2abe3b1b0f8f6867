#include "broker/tls/host_resolver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "broker/common/mutex.h"

namespace tlsbroker {
namespace {

class ResolverThreads final {
 public:
  // Never destroyed: detached threads may still be inside getaddrinfo when main() returns,
  // and must find this object when they come back.
  static ResolverThreads& Get() {
    static ResolverThreads* const instance = new ResolverThreads;
    return *instance;
  }

  void Resolve(const std::string& host, uint16_t port, ResolveCallback done) {
    Key key{host, port};
    {
      MutexLock lock(&mu_);
      std::vector<ResolveCallback>& waiting = waiters_[key];
      waiting.push_back(std::move(done));
      if (waiting.size() > 1) return;  // The lookup queued or running answers this one too.
      queue_.push_back(std::move(key));
      if (threads_ >= kMaxResolverThreads) return;  // A running thread takes it next.
      ++threads_;
    }
    try {
      std::thread([this] { Work(); }).detach();
    } catch (const std::system_error& e) {
      // No thread (process or memory limits). If no other thread will serve the queue, fail
      // what waits rather than leave it queued forever.
      std::vector<ResolveCallback> failed;
      {
        MutexLock lock(&mu_);
        if (--threads_ > 0) return;
        for (const Key& queued : queue_) {
          auto it = waiters_.find(queued);
          if (it == waiters_.end()) continue;
          for (ResolveCallback& cb : it->second) failed.push_back(std::move(cb));
          waiters_.erase(it);
        }
        queue_.clear();
      }
      const absl::Status error = absl::UnavailableError(
          absl::StrCat("cannot start a name resolver thread: ", e.what()));
      for (ResolveCallback& cb : failed) std::move(cb)(error);
    }
  }

  void SetFunction(ResolveFunction resolve) {
    MutexLock lock(&mu_);
    resolve_ = std::move(resolve);
  }

  int threads() {
    MutexLock lock(&mu_);
    return threads_;
  }

 private:
  using Key = std::pair<std::string, uint16_t>;

  ResolverThreads() = default;

  void Work() {
    for (;;) {
      Key key;
      ResolveFunction resolve;
      {
        MutexLock lock(&mu_);
        if (queue_.empty()) {
          --threads_;
          return;
        }
        key = std::move(queue_.front());
        queue_.pop_front();
        resolve = resolve_;
      }
      absl::StatusOr<ResolvedEndpoints> result =
          resolve ? resolve(key.first, key.second) : ResolveWithGetaddrinfo(key.first, key.second);
      std::vector<ResolveCallback> waiting;
      {
        MutexLock lock(&mu_);
        auto it = waiters_.find(key);
        if (it != waiters_.end()) {
          waiting = std::move(it->second);
          waiters_.erase(it);
        }
      }
      for (ResolveCallback& done : waiting) std::move(done)(result);
    }
  }

  Mutex mu_;
  std::deque<Key> queue_ ABSL_GUARDED_BY(mu_);
  // Everyone waiting for a queued or running lookup, by host and port.
  std::map<Key, std::vector<ResolveCallback>> waiters_ ABSL_GUARDED_BY(mu_);
  int threads_ ABSL_GUARDED_BY(mu_) = 0;
  ResolveFunction resolve_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<ResolvedEndpoints> ResolveWithGetaddrinfo(const std::string& host,
                                                         uint16_t port) {
  // The hints asio's resolver uses for a TCP query without flags.
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    // gai_strerror and std::error_code are thread-safe; strerror is not.
    std::string why = rc == EAI_SYSTEM ? std::error_code(errno, std::system_category()).message()
                                       : gai_strerror(rc);
    return absl::UnavailableError(absl::StrCat("resolving \"", host, "\": ", why));
  }
  ResolvedEndpoints endpoints;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    asio::ip::tcp::endpoint endpoint;
    if (ai->ai_addrlen > endpoint.capacity()) continue;
    std::memcpy(endpoint.data(), ai->ai_addr, ai->ai_addrlen);
    endpoint.resize(ai->ai_addrlen);
    endpoints.push_back(endpoint);
  }
  freeaddrinfo(list);
  if (endpoints.empty()) {
    return absl::UnavailableError(absl::StrCat("resolving \"", host, "\": no IP address"));
  }
  return endpoints;
}

void ResolveHost(const std::string& host, uint16_t port, ResolveCallback done) {
  asio::error_code ec;
  const asio::ip::address literal = asio::ip::make_address(host, ec);
  if (!ec) {
    std::move(done)(ResolvedEndpoints{asio::ip::tcp::endpoint(literal, port)});
    return;
  }
  ResolverThreads::Get().Resolve(host, port, std::move(done));
}

void SetResolveFunctionForTesting(ResolveFunction resolve) {
  ResolverThreads::Get().SetFunction(std::move(resolve));
}

int ResolverThreadsForTesting() { return ResolverThreads::Get().threads(); }

}  // namespace tlsbroker
