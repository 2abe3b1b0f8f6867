#ifndef TLSBROKER_TESTS_SUPPORT_REFUSING_PORT_H_
#define TLSBROKER_TESTS_SUPPORT_REFUSING_PORT_H_

namespace tlsbroker::testutil {

// A loopback TCP port that refuses every connection for as long as this object lives: a
// socket bound to 127.0.0.1 (port picked by the kernel) that never listens. Unlike a port that
// was free a moment ago, no other test under ctest -j can start listening on it meanwhile, so
// "nobody listens here" stays true for the whole test.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  int port() const { return port_; }  // -1 if no socket could be bound

 private:
  int fd_ = -1;
  int port_ = -1;
};

}  // namespace tlsbroker::testutil

#endif  // TLSBROKER_TESTS_SUPPORT_REFUSING_PORT_H_
