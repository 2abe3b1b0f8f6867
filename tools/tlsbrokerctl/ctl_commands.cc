#include "tools/tlsbrokerctl/ctl_commands.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "broker/common/status_macros.h"
#include "tlsbroker/v1/broker.grpc.pb.h"
#include "tools/tlsbrokerctl/ctl_output.h"

namespace tlsbroker::ctl {
namespace {

constexpr char kReasonKey[] = "tlsbroker-reason";
constexpr size_t kStdinChunk = 16 * 1024;

void PrintError(absl::string_view message) {
  std::cerr << "tlsbrokerctl: " << message << std::endl;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ostringstream contents;
  if (path == "-") {
    contents << std::cin.rdbuf();
    if (std::cin.bad()) return absl::InvalidArgumentError("cannot read stdin");
    return contents.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " \"", path, "\": ", std::strerror(errno)));
  }
  contents << in.rdbuf();
  return contents.str();
}

// Writes all of `data` to `fd`; false on failure (e.g. a closed pipe).
bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool PrintStdout(absl::string_view data) {
  if (WriteAll(STDOUT_FILENO, data)) return true;
  PrintError(absl::StrCat("cannot write stdout: ", std::strerror(errno)));
  return false;
}

int ReportRpcError(absl::string_view what, const grpc::Status& status,
                   const grpc::ClientContext& context) {
  std::cerr << DescribeRpcError(what, status, context);
  return ExitCodeFor(status.error_code());
}

void SetDeadline(grpc::ClientContext* context, const CtlOptions& options) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
}

int RunCall(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  v1::CallRequest request;
  request.set_backend(options.backend);
  request.set_client_id(options.client_id);
  switch (options.payload_source) {
    case PayloadSource::kData:
      request.set_request(options.payload_arg);
      break;
    case PayloadSource::kFrameText:
      request.set_request(FrameText(options.payload_arg));
      break;
    case PayloadSource::kFile: {
      absl::StatusOr<std::string> data = ReadFile(options.payload_arg, "--file");
      if (!data.ok()) {
        PrintError(data.status().message());
        return kExitUsage;
      }
      request.set_request(*std::move(data));
      break;
    }
    case PayloadSource::kNone:
      PrintError("call needs one of --data, --file, --frame-text");
      return kExitUsage;
  }
  auto stub = v1::BrokerService::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, options);
  v1::CallResponse response;
  grpc::Status status = stub->Call(&context, request, &response);
  if (!status.ok()) return ReportRpcError("call", status, context);
  if (options.json) {
    absl::StatusOr<std::string> json = CallResponseJson(response);
    if (!json.ok()) {
      PrintError(json.status().message());
      return kExitLocalError;
    }
    return PrintStdout(*json + "\n") ? kExitOk : kExitLocalError;
  }
  if (!options.quiet) std::cerr << "lease: " << LeaseSummary(response.lease()) << std::endl;
  return PrintStdout(response.response()) ? kExitOk : kExitLocalError;
}

// Shared between the thread that copies stdin to the stream and the one that copies the stream
// to stdout. Thread-safe.
class LeaseBridge {
 public:
  LeaseBridge() {
    if (pipe(wake_) != 0) wake_[0] = wake_[1] = -1;
  }
  ~LeaseBridge() {
    if (wake_[0] >= 0) close(wake_[0]);
    if (wake_[1] >= 0) close(wake_[1]);
  }

  // The stream delivered data: restarts the linger period.
  void DataReceived() {
    std::lock_guard<std::mutex> lock(mu_);
    last_data_ = absl::Now();
    cv_.notify_all();
  }

  // The stream ended: wakes the stdin thread wherever it waits.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
      cv_.notify_all();
    }
    if (wake_[1] >= 0) {
      char b = 0;
      (void)!write(wake_[1], &b, 1);
    }
  }

  // Copies stdin to `stream` as data messages; at EOF waits for `linger` of quiet from the
  // backend, then half-closes (the broker releases the lease).
  void PumpStdin(grpc::ClientReaderWriter<v1::LeaseRequest, v1::LeaseResponse>* stream,
                 absl::Duration linger) {
    std::string buf(kStdinChunk, '\0');
    while (true) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      int ready = poll(fds, wake_[0] >= 0 ? 2 : 1, -1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0 || (fds[1].revents & POLLIN) != 0) return;  // stream ended
      ssize_t n = read(STDIN_FILENO, buf.data(), buf.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) break;  // EOF (or an unreadable stdin, treated alike)
      v1::LeaseRequest request;
      request.set_data(buf.data(), static_cast<size_t>(n));
      if (!stream->Write(request)) return;  // stream ended; the reader reports why
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      absl::Time quiet_since = absl::Now();
      while (!stopped_) {
        if (last_data_ > quiet_since) quiet_since = last_data_;
        absl::Duration left = quiet_since + linger - absl::Now();
        if (left <= absl::ZeroDuration()) break;
        cv_.wait_for(lock, absl::ToChronoNanoseconds(left));
      }
      if (stopped_) return;
    }
    stream->WritesDone();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  absl::Time last_data_ = absl::InfinitePast();  // guarded by mu_
  bool stopped_ = false;                         // guarded by mu_
  int wake_[2] = {-1, -1};
};

int RunLease(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::BrokerService::NewStub(channel);
  // No deadline: a session lasts as long as the user wants. --timeout bounds only the wait for
  // the lease, through a watchdog that cancels the call.
  grpc::ClientContext context;
  auto stream = stub->Lease(&context);

  std::mutex watchdog_mu;
  std::condition_variable watchdog_cv;
  bool got_info = false;  // guarded by watchdog_mu
  bool timed_out = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(watchdog_mu);
    if (!watchdog_cv.wait_for(lock, absl::ToChronoNanoseconds(options.timeout),
                              [&] { return got_info; })) {
      timed_out = true;
      context.TryCancel();
    }
  });
  auto stop_watchdog = [&] {
    {
      std::lock_guard<std::mutex> lock(watchdog_mu);
      got_info = true;
    }
    watchdog_cv.notify_all();
    if (watchdog.joinable()) watchdog.join();
  };

  v1::LeaseRequest open;
  open.mutable_open()->set_backend(options.backend);
  open.mutable_open()->set_client_id(options.client_id);
  if (options.timeout_set) {
    const absl::Duration t = options.timeout;
    open.mutable_open()->mutable_acquire_timeout()->set_seconds(absl::ToInt64Seconds(t));
    open.mutable_open()->mutable_acquire_timeout()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(t % absl::Seconds(1))));
  }
  v1::LeaseResponse response;
  bool ok = stream->Write(open) && stream->Read(&response);
  stop_watchdog();
  if (!ok) {
    grpc::Status status = stream->Finish();
    if (timed_out) {
      PrintError(absl::StrCat("lease failed: DEADLINE_EXCEEDED: no lease within ",
                              absl::FormatDuration(options.timeout)));
      return kExitDeadline;
    }
    return ReportRpcError("lease", status, context);
  }
  if (response.kind_case() != v1::LeaseResponse::kInfo) {
    PrintError("lease failed: the broker's first message was not the lease info");
    context.TryCancel();
    stream->Finish();
    return kExitRpcError;
  }
  if (options.json) {
    absl::StatusOr<std::string> json = MessageJson(response.info());
    std::cerr << (json.ok() ? *json : std::string(json.status().message())) << std::endl;
  } else if (!options.quiet) {
    std::cerr << "lease: " << LeaseSummary(response.info()) << std::endl;
  }

  LeaseBridge bridge;
  std::thread pump([&] { bridge.PumpStdin(stream.get(), options.linger); });
  bool output_failed = false;
  while (stream->Read(&response)) {
    if (response.kind_case() != v1::LeaseResponse::kData) continue;
    if (!PrintStdout(response.data())) {
      output_failed = true;
      context.TryCancel();
      break;
    }
    bridge.DataReceived();
  }
  bridge.Stop();
  pump.join();
  grpc::Status status = stream->Finish();
  if (output_failed) return kExitLocalError;
  if (!status.ok()) return ReportRpcError("lease", status, context);
  return kExitOk;
}

// Prints `response` as JSON with --json, else `text`.
int PrintResult(const CtlOptions& options, const google::protobuf::Message& response,
                const std::string& text) {
  if (options.json) {
    absl::StatusOr<std::string> json = MessageJson(response);
    if (!json.ok()) return PrintError(json.status().message()), kExitLocalError;
    return PrintStdout(*json + "\n") ? kExitOk : kExitLocalError;
  }
  return PrintStdout(text) ? kExitOk : kExitLocalError;
}

int RunBackends(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::BrokerAdminService::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, options);
  v1::ListBackendsResponse response;
  grpc::Status status = stub->ListBackends(&context, v1::ListBackendsRequest(), &response);
  if (!status.ok()) return ReportRpcError("backends", status, context);
  return PrintResult(options, response, BackendsTable(response));
}

int RunSockets(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::BrokerAdminService::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, options);
  v1::ListSocketsRequest request;
  request.set_backend(options.backend);
  v1::ListSocketsResponse response;
  grpc::Status status = stub->ListSockets(&context, request, &response);
  if (!status.ok()) return ReportRpcError("sockets", status, context);
  return PrintResult(options, response, SocketsTable(response, absl::Now()));
}

int RunDrain(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::BrokerAdminService::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, options);
  v1::DrainRequest request;
  request.set_backend(options.backend);
  request.set_all(options.all);
  v1::DrainResponse response;
  grpc::Status status = stub->Drain(&context, request, &response);
  if (!status.ok()) return ReportRpcError("drain", status, context);
  return PrintResult(
      options, response,
      absl::StrCat("draining ", options.all ? "the whole broker" : options.backend, ": closed ",
                   response.closed_idle(), " idle socket(s), ", response.leased(),
                   " leased socket(s) close when their lease ends; undo with `tlsbrokerctl "
                   "resume ", options.all ? "--all" : options.backend, "`\n"));
}

int RunResume(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::BrokerAdminService::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, options);
  v1::ResumeRequest request;
  request.set_backend(options.backend);
  request.set_all(options.all);
  v1::ResumeResponse response;
  grpc::Status status = stub->Resume(&context, request, &response);
  if (!status.ok()) return ReportRpcError("resume", status, context);
  std::string text = response.resumed().empty()
                         ? "resumed: nothing (was not draining)\n"
                         : absl::StrCat("resumed: ", absl::StrJoin(response.resumed(), ", "),
                                        "\n");
  if (!response.still_draining().empty()) {
    absl::StrAppend(&text, "still draining: ", absl::StrJoin(response.still_draining(), ", "),
                    "\n");
  }
  return PrintResult(options, response, text);
}

int RunReload(const CtlOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::BrokerAdminService::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, options);
  v1::ReloadResponse response;
  grpc::Status status = stub->Reload(&context, v1::ReloadRequest(), &response);
  // A rejected configuration comes back as FAILED_PRECONDITION whose message lists the errors,
  // one per line; DescribeRpcError prints them as they are.
  if (!status.ok()) return ReportRpcError("reload", status, context);
  if (options.json) {
    absl::StatusOr<std::string> json = MessageJson(response);
    if (!json.ok()) return PrintError(json.status().message()), kExitLocalError;
    return PrintStdout(*json + "\n") ? kExitOk : kExitLocalError;
  }
  std::string out = response.applied() ? "reloaded: the new configuration is in force\n"
                                       : "reload finished without applying a configuration\n";
  for (const std::string& e : response.errors()) absl::StrAppend(&out, "warning: ", e, "\n");
  if (!PrintStdout(out)) return kExitLocalError;
  return response.applied() ? kExitOk : kExitRpcError;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ConnectionOptions& options) {
  grpc::ChannelArguments args;
  // The CLI prints whatever the backend answered; the broker bounds frame sizes already.
  args.SetMaxReceiveMessageSize(-1);
  if (options.insecure_plaintext) {
    BROKER_RETURN_IF_ERROR(CheckPlaintextTarget(options.target));
    return grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) {
    BROKER_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(options.ca_file, "--ca"));
  }
  if (!options.cert_file.empty()) {
    BROKER_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(options.cert_file, "--cert"));
    BROKER_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(options.key_file, "--key"));
  }
  if (!options.server_name.empty()) args.SetSslTargetNameOverride(options.server_name);
  return grpc::CreateCustomChannel(options.target, grpc::SslCredentials(ssl), args);
}

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::UNAVAILABLE:
      return kExitUnavailable;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return kExitDenied;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitDeadline;
    default:
      return kExitRpcError;
  }
}

std::string DescribeRpcError(absl::string_view what, const grpc::Status& status,
                             const grpc::ClientContext& context) {
  std::string reason;
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find(kReasonKey); it != trailers.end()) {
    reason.assign(it->second.data(), it->second.size());
  } else if (v1::RpcStatus details;
             !status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const google::protobuf::Any& any : details.details()) {
      v1::ErrorInfo info;
      if (absl::EndsWith(any.type_url(), "google.rpc.ErrorInfo") &&
          info.ParseFromString(any.value())) {
        reason = info.reason();
      }
    }
  }
  const std::string code =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  std::string out;
  // A multi-line message (reload errors) keeps one error per line.
  bool first = true;
  for (absl::string_view line : absl::StrSplit(status.error_message(), '\n')) {
    if (first) {
      absl::StrAppend(&out, "tlsbrokerctl: ", what, " failed: ", code, ": ", line, "\n");
      first = false;
    } else {
      absl::StrAppend(&out, "tlsbrokerctl:   ", line, "\n");
    }
  }
  if (!reason.empty()) absl::StrAppend(&out, "tlsbrokerctl: reason: ", reason, "\n");
  return out;
}

int RunCtlCommand(const CtlOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options.connection);
  if (!channel.ok()) {
    PrintError(channel.status().message());
    return kExitUsage;
  }
  switch (options.command) {
    case Command::kCall:
      return RunCall(options, *channel);
    case Command::kLease:
      return RunLease(options, *channel);
    case Command::kBackends:
      return RunBackends(options, *channel);
    case Command::kSockets:
      return RunSockets(options, *channel);
    case Command::kDrain:
      return RunDrain(options, *channel);
    case Command::kResume:
      return RunResume(options, *channel);
    case Command::kReload:
      return RunReload(options, *channel);
    case Command::kHelp:
    case Command::kVersion:
      break;  // main() answers these without a broker.
  }
  return kExitUsage;
}

}  // namespace tlsbroker::ctl
