// The main() of every test binary: GoogleTest's, plus the one process-wide setting the broker
// itself makes at startup (services/main.cc). A peer that hangs up while a test or an
// in-process TLS server writes must surface as EPIPE the test can assert on, not as a SIGPIPE
// that kills the whole test binary (child processes get SIG_DFL back, tests/support/subprocess.cc).
#include <csignal>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
