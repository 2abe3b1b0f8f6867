#ifndef TESTS_SUPPORT_SUBPROCESS_H_
#define TESTS_SUPPORT_SUBPROCESS_H_

// Child processes and loopback ports for tests that run real third-party peers
// (openssl s_server / s_client / ocsp, the project's own tlsb-test-backend).

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlsbroker::testutil {

// A running child process, started with fork/exec (no shell), stdout and stderr appended to a
// log file, stdin from /dev/null. Destruction kills it (SIGTERM, then SIGKILL after a short
// grace) and reaps it, so a failing test never leaves a peer behind; the child also gets
// SIGKILL if the thread that started it exits (PR_SET_PDEATHSIG), which covers a test binary
// killed by a ctest timeout. Start children from a thread that outlives them.
//
// Thread-compatible: one owner thread.
class Subprocess final {
 public:
  // Starts argv[0] (looked up in PATH) with `argv`. `log_path` receives stdout and stderr; an
  // empty `log_path` makes a fresh file under $TMPDIR (see log_path()), removed with this
  // object.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(std::vector<std::string> argv,
                                                           std::string log_path = "");

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Everything the child wrote so far.
  std::string ReadLog() const;

  // Waits until the log contains `needle`. Fails early if the child exits first.
  absl::Status WaitForLog(absl::string_view needle, absl::Duration timeout);

  // Sends `signal` to the child (no effect once it has been reaped).
  absl::Status Signal(int signal);

  // True while the child has not exited (reaps it if it has).
  bool Running();

  // Waits for the child to exit by itself; returns its wait status decoded: the exit code,
  // or 128 + signal number. DeadlineExceeded if it is still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // SIGTERM, then SIGKILL after `grace`; reaps. Returns the decoded exit status (as Wait()).
  // Idempotent.
  int Stop(absl::Duration grace = absl::Seconds(2));

 private:
  Subprocess(pid_t pid, std::string log_path, std::string owned_dir)
      : pid_(pid), log_path_(std::move(log_path)), owned_dir_(std::move(owned_dir)) {}

  pid_t pid_;
  bool reaped_ = false;
  int exit_status_ = -1;
  std::string log_path_;
  std::string owned_dir_;  // temporary directory holding log_path_, if we made it
};

// Result of RunCommand().
struct CommandResult {
  int exit_code = -1;  // exit code, or 128 + signal number
  std::string output;  // stdout and stderr, interleaved as written
};

// Runs argv to completion with `stdin_data` on its stdin (then EOF), capturing its output.
// The child is killed after `timeout` (DeadlineExceeded). A non-zero exit is not an error:
// look at exit_code.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::string_view stdin_data = "",
                                         absl::Duration timeout = absl::Seconds(30));

// Polls until a TCP connect to 127.0.0.1:port succeeds, or `timeout` passes. Beware: the probe
// connection is accepted and closed by the server, which single-connection servers (s_server)
// see as a failed client; use a log line ("ACCEPT") for those.
absl::Status WaitForPort(int port, absl::Duration timeout);

// Calls `condition` every few milliseconds until it returns true or `timeout` passes; returns
// the last result. For conditions that have no notification to wait on.
bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout);

// A fresh empty directory under $TMPDIR (or /tmp), e.g. for logs of one test. Removed with
// its contents when the process exits (unless TLSB_KEEP_TEMP=1).
std::string MakeTempDir(absl::string_view prefix = "tlsb-test");

// Reads a whole file; empty string if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_SUBPROCESS_H_
