#ifndef TESTS_SUPPORT_SILENT_TCP_SERVER_H_
#define TESTS_SUPPORT_SILENT_TCP_SERVER_H_

// A peer that takes connections and never answers: a listening socket on 127.0.0.1 (port
// picked by the kernel) whose connections are accepted and held open but never read or
// written. A client's request to it hangs until the client gives up or Close() hangs up
// (e.g. an OCSP responder that never answers).

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tlsbroker::testutil {

// Thread-compatible.
class SilentTcpServer final {
 public:
  SilentTcpServer();
  ~SilentTcpServer();  // Close()
  SilentTcpServer(const SilentTcpServer&) = delete;
  SilentTcpServer& operator=(const SilentTcpServer&) = delete;

  bool ok() const { return listen_fd_ >= 0; }
  int port() const { return port_; }
  std::string url() const;  // http://127.0.0.1:PORT/

  // Waits until a client connects (or `timeout` passes) and holds that connection open.
  bool WaitForConnection(absl::Duration timeout);
  // Closes the held connections (the clients see EOF) and the listener. Idempotent.
  void Close();

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> held_;
};

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_SILENT_TCP_SERVER_H_
