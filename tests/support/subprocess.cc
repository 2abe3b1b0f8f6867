#include "tests/support/subprocess.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tlsbroker::testutil {
namespace {

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// Everything a child needs, prepared before fork(): after fork() in a multi-threaded parent
// only async-signal-safe calls are allowed, so no allocation happens in the child.
struct ExecArgs {
  explicit ExecArgs(const std::vector<std::string>& argv) {
    for (const std::string& arg : argv) ptrs.push_back(const_cast<char*>(arg.c_str()));
    ptrs.push_back(nullptr);
  }
  std::vector<char*> ptrs;
};

// In the child: wires up fds 0/1/2, dies with the parent thread, closes everything else, execs.
[[noreturn]] void ExecChild(const ExecArgs& args, int stdin_fd, int out_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Restore what a test binary may have changed (the broker ignores SIGPIPE).
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  dup2(stdin_fd, 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  syscall(SYS_close_range, 3U, ~0U, 0U);
  // New process group, so a terminal's Ctrl-C goes to the test, which then cleans up.
  setpgid(0, 0);
  execvp(args.ptrs[0], args.ptrs.data());
  const char msg[] = "exec failed\n";
  ssize_t ignored = write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  _exit(127);
}

}  // namespace

namespace {

// The directories MakeTempDir made in this process, removed when it exits (every ctest entry is
// its own process, so each test cleans up after itself, pass or fail). TLSB_KEEP_TEMP=1 keeps
// them for a post-mortem.
std::mutex temp_dirs_mu;
std::vector<std::string>& TempDirs() {
  static auto* dirs = new std::vector<std::string>();  // never destroyed: used at exit
  return *dirs;
}

void RemoveTempDirs() {
  const char* keep = getenv("TLSB_KEEP_TEMP");
  if (keep != nullptr && *keep != '\0' && *keep != '0') return;
  std::lock_guard<std::mutex> lock(temp_dirs_mu);
  for (const std::string& dir : TempDirs()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}

}  // namespace

std::string MakeTempDir(absl::string_view prefix) {
  const char* tmp = getenv("TMPDIR");
  std::string templ =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", prefix, ".XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return "";
  std::lock_guard<std::mutex> lock(temp_dirs_mu);
  if (TempDirs().empty()) std::atexit(RemoveTempDirs);
  TempDirs().push_back(templ);
  return templ;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(std::vector<std::string> argv,
                                                              std::string log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::string owned_dir;
  if (log_path.empty()) {
    owned_dir = MakeTempDir("tlsb-subprocess");
    if (owned_dir.empty()) return ErrnoStatus("mkdtemp");
    log_path = absl::StrCat(owned_dir, "/output.log");
  }
  int out_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) return ErrnoStatus(absl::StrCat("open ", log_path));
  int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) {
    close(out_fd);
    return ErrnoStatus("open /dev/null");
  }
  ExecArgs args(argv);
  pid_t pid = fork();
  if (pid == 0) ExecChild(args, in_fd, out_fd);
  int fork_errno = errno;
  close(in_fd);
  close(out_fd);
  if (pid < 0) {
    errno = fork_errno;
    return ErrnoStatus("fork");
  }
  return std::unique_ptr<Subprocess>(
      new Subprocess(pid, std::move(log_path), std::move(owned_dir)));
}

Subprocess::~Subprocess() {
  Stop();
  if (!owned_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(owned_dir_, ignored);
  }
}

std::string Subprocess::ReadLog() const { return ReadFileOrEmpty(log_path_); }

absl::Status Subprocess::WaitForLog(absl::string_view needle, absl::Duration timeout) {
  bool exited = false;
  bool found = PollUntil(
      [&] {
        if (ReadLog().find(needle.data(), 0, needle.size()) != std::string::npos) return true;
        exited = !Running();
        return exited;
      },
      timeout);
  // The child may have written the line and exited between the two checks.
  if (ReadLog().find(needle.data(), 0, needle.size()) != std::string::npos) return absl::OkStatus();
  if (found && exited) {
    return absl::FailedPreconditionError(absl::StrCat("process exited (status ", exit_status_,
                                                      ") before logging '", needle, "'; log:\n",
                                                      ReadLog()));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "no '", needle, "' in the log after ", absl::FormatDuration(timeout), "; log:\n", ReadLog()));
}

absl::Status Subprocess::Signal(int signal) {
  if (reaped_) return absl::OkStatus();
  if (kill(pid_, signal) != 0) return ErrnoStatus("kill");
  return absl::OkStatus();
}

bool Subprocess::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_status_ = DecodeWaitStatus(status);
    return false;
  }
  return r == 0;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (!PollUntil([&] { return !Running(); }, timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("pid ", pid_, " still running after ", absl::FormatDuration(timeout)));
  }
  return exit_status_;
}

int Subprocess::Stop(absl::Duration grace) {
  if (!Running()) return exit_status_;
  kill(pid_, SIGTERM);
  if (!Wait(grace).ok()) {
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    exit_status_ = DecodeWaitStatus(status);
  }
  return exit_status_;
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::string_view stdin_data, absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  int in_pipe[2];
  int out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe");
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return ErrnoStatus("pipe");
  }
  ExecArgs args(argv);
  pid_t pid = fork();
  if (pid == 0) ExecChild(args, in_pipe[0], out_pipe[1]);
  int fork_errno = errno;
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (pid < 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    errno = fork_errno;
    return ErrnoStatus("fork");
  }

  // Feed stdin and drain stdout together, so neither side can block the other.
  int in_fd = in_pipe[1];
  int out_fd = out_pipe[0];
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  CommandResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (out_fd >= 0) {
    pollfd fds[2];
    int n = 0;
    fds[n++] = {out_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    int ready = poll(fds, n, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno != EINTR) break;
    if (in_fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w = write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) written = stdin_data.size();
      if (written == stdin_data.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      char buf[4096];
      ssize_t r = read(out_fd, buf, sizeof(buf));
      if (r > 0) {
        result.output.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        close(out_fd);
        out_fd = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  if (out_fd >= 0) close(out_fd);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " did not finish within ",
                                                    absl::FormatDuration(timeout), "; output:\n",
                                                    result.output));
  }
  result.exit_code = DecodeWaitStatus(status);
  return result;
}

absl::Status WaitForPort(int port, absl::Duration timeout) {
  bool ok = PollUntil(
      [port] {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<uint16_t>(port));
        bool connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
        close(fd);
        return connected;
      },
      timeout);
  if (ok) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat("nothing accepts on 127.0.0.1:", port, " after ",
                                                  absl::FormatDuration(timeout)));
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace tlsbroker::testutil
