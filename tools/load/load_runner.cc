#include "tools/load/load_runner.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/common/mutex.h"
#include "tlsbroker/v1/broker.grpc.pb.h"
#include "tools/load/payload.h"

namespace tlsbroker::load {
namespace {

namespace v1 = ::tlsbroker::v1;
using Clock = std::chrono::steady_clock;

int64_t MicrosSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

// The status message, prefixed by the broker's machine-readable reason when it sent one.
std::string ErrorMessage(const grpc::ClientContext& ctx, const grpc::Status& status) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto reason = trailers.find("tlsbroker-reason");
  if (reason == trailers.end()) return status.error_message();
  return absl::StrCat(std::string(reason->second.data(), reason->second.size()), ": ",
                      status.error_message());
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Hands out operations until the count or the time runs out. Thread-safe.
class Budget {
 public:
  Budget(int64_t count, Clock::time_point end, bool has_end)
      : remaining_(count), unlimited_(count < 0), end_(end), has_end_(has_end) {}
  bool Claim() {
    if (has_end_ && Clock::now() >= end_) return false;
    if (unlimited_) return true;
    return remaining_.fetch_sub(1, std::memory_order_relaxed) > 0;
  }

 private:
  std::atomic<int64_t> remaining_;
  const bool unlimited_;
  const Clock::time_point end_;
  const bool has_end_;
};

class Caller;

// What the callers share. Thread-safe.
class Run {
 public:
  Run(const LoadOptions& options, int64_t count, Clock::time_point end, bool has_end)
      : options(options),
        payloads(options.response_prefix, options.size_max, options.seed),
        budget(count, end, has_end) {}

  const LoadOptions& options;
  const PayloadFactory payloads;
  const BulkPattern pattern;
  Budget budget;

  // A caller whose chain would recurse too deeply (a completion that ran inline) continues on
  // the main thread instead.
  void Defer(Caller* caller) {
    std::lock_guard<std::mutex> lock(mu_);
    deferred_.push_back(caller);
    cv_.notify_all();
  }
  void CallerFinished() {
    std::lock_guard<std::mutex> lock(mu_);
    ++finished_;
    cv_.notify_all();
  }
  // Runs deferred callers until `callers` have finished.
  void Wait(int callers);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Caller*> deferred_;
  int finished_ = 0;
};

// One chain of operations, one in flight at a time, so its stats are touched by one reaction at
// a time (each operation starts the next from its completion).
class Caller {
 public:
  Caller(Run* run, v1::BrokerService::Stub* stub, int index)
      : run_(run), stub_(stub), index_(index), rng_(run->options.seed * 7919 + index) {}

  // Starts the next operation, or reports this caller finished when the budget is spent.
  void Continue();

  LoadStats& stats() { return stats_; }
  Run* run() { return run_; }
  v1::BrokerService::Stub* stub() { return stub_; }
  int index() const { return index_; }
  std::string NextRequest();

 private:
  void StartCall();

  Run* run_;
  v1::BrokerService::Stub* stub_;
  const int index_;
  std::mt19937_64 rng_;
  int64_t seq_ = 0;
  LoadStats stats_;
};

thread_local int continue_depth = 0;

void Run::Wait(int callers) {
  std::unique_lock<std::mutex> lock(mu_);
  while (finished_ < callers) {
    if (!deferred_.empty()) {
      Caller* c = deferred_.front();
      deferred_.pop_front();
      lock.unlock();
      c->Continue();
      lock.lock();
      continue;
    }
    cv_.wait(lock);
  }
}

std::string Caller::NextRequest() {
  const LoadOptions& o = run_->options;
  int64_t size = o.size_min;
  if (o.size_max > o.size_min) {
    size = std::uniform_int_distribution<int64_t>(o.size_min, o.size_max)(rng_);
  }
  return run_->payloads.FramedRequest(index_, seq_++, size);
}

// One BrokerService.Call. Owns itself until its completion.
struct CallOp {
  grpc::ClientContext ctx;
  v1::CallRequest request;
  v1::CallResponse response;
  Clock::time_point start;
};

// One Lease stream: framed exchanges (lease mode) or a bulk echo (bulk mode). Deletes itself in
// OnDone and then continues its caller. Reactions may run concurrently on gRPC threads (a read
// and a write completion), so state is guarded by mu_; gRPC operations are started outside it.
class LeaseStream final : public grpc::ClientBidiReactor<v1::LeaseRequest, v1::LeaseResponse> {
 public:
  explicit LeaseStream(Caller* caller) : caller_(caller), run_(caller->run()) {
    const LoadOptions& o = run_->options;
    bulk_ = o.mode == LoadMode::kBulk;
    ctx_.set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMicroseconds(o.timeout));
    v1::LeaseRequest open;
    open.mutable_open()->set_backend(o.backend);
    if (!o.client_id.empty()) open.mutable_open()->set_client_id(o.client_id);
    {
      MutexLock lock(&mu_);
      pending_.push_back(std::move(open));
    }
    caller_->stub()->async()->Lease(&ctx_, this);
    StartRead(&response_);
    Pump();
    StartCall();
  }

  // grpc::ClientBidiReactor
  void OnWriteDone(bool ok) override {
    {
      MutexLock lock(&mu_);
      write_in_flight_ = false;
    }
    if (ok) Pump();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    bool cancel = false;
    {
      MutexLock lock(&mu_);
      if (response_.has_info()) {
        got_info_ = true;
        client_id_ = response_.info().client_id();
        if (!bulk_) SendNextExchangeLocked();
        stream_start_ = Clock::now();
      } else if (response_.kind_case() == v1::LeaseResponse::kData) {
        cancel = bulk_ ? OnBulkDataLocked(response_.data()) : OnFramedDataLocked(response_.data());
      }
    }
    if (cancel) {
      ctx_.TryCancel();
      return;
    }
    Pump();
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    Caller* caller = caller_;
    LoadStats& stats = caller->stats();
    {
      MutexLock lock(&mu_);
      const LoadOptions& o = run_->options;
      stats.exchanges += exchanges_;
      stats.latencies_us.insert(stats.latencies_us.end(), latencies_.begin(), latencies_.end());
      const bool complete = bulk_ ? received_ == o.bulk_bytes : exchanges_ == o.exchanges_per_lease;
      if (corrupt_) {
        ++stats.corrupt;
      } else if (!status.ok()) {
        stats.RecordError(CodeName(status.error_code()), ErrorMessage(ctx_, status));
      } else if (!complete) {
        stats.RecordError("INCOMPLETE", "the stream ended before every response arrived");
      } else {
        ++stats.ok;
        stats.bulk_bytes += received_;
        ++stats.client_ids[client_id_];
      }
    }
    delete this;
    caller->Continue();
  }

 private:
  void SendNextExchangeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    current_request_ = caller_->NextRequest();
    v1::LeaseRequest data;
    data.set_data(current_request_);
    pending_.push_back(std::move(data));
    exchange_start_ = Clock::now();
  }

  // Returns true when the stream must be cancelled (a wrong response).
  bool OnFramedDataLocked(const std::string& data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    inbox_ += data;
    while (size_t n = PayloadFactory::CompleteFrameLength(inbox_)) {
      const bool expected = exchanges_ < run_->options.exchanges_per_lease &&
                            run_->payloads.IsExpectedResponse(current_request_,
                                                              absl::string_view(inbox_).substr(0, n));
      if (!expected) {
        corrupt_ = true;
        return true;
      }
      latencies_.push_back(MicrosSince(exchange_start_));
      inbox_.erase(0, n);
      if (++exchanges_ < run_->options.exchanges_per_lease) {
        SendNextExchangeLocked();
      } else {
        want_writes_done_ = true;
      }
    }
    return false;
  }

  bool OnBulkDataLocked(const std::string& data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (received_ + static_cast<int64_t>(data.size()) > run_->options.bulk_bytes ||
        !run_->pattern.Matches(received_, data)) {
      corrupt_ = true;
      return true;
    }
    received_ += static_cast<int64_t>(data.size());
    if (received_ == run_->options.bulk_bytes) {
      latencies_.push_back(MicrosSince(stream_start_));
      want_writes_done_ = true;
    }
    return false;
  }

  // Starts the next write (one in flight at a time), or the half-close once everything is in.
  void Pump() {
    enum { kNothing, kWrite, kWritesDone } action = kNothing;
    {
      MutexLock lock(&mu_);
      if (write_in_flight_ || writes_done_started_) return;
      const LoadOptions& o = run_->options;
      if (!pending_.empty()) {
        write_ = std::move(pending_.front());
        pending_.pop_front();
        action = kWrite;
      } else if (bulk_ && got_info_ && sent_ < o.bulk_bytes) {
        const int64_t n = std::min(o.bulk_message_bytes, o.bulk_bytes - sent_);
        write_.set_data(run_->pattern.Bytes(sent_, static_cast<size_t>(n)));
        sent_ += n;
        action = kWrite;
      } else if (want_writes_done_) {
        writes_done_started_ = true;
        action = kWritesDone;
      }
      if (action == kWrite) write_in_flight_ = true;
    }
    if (action == kWrite) StartWrite(&write_);
    if (action == kWritesDone) StartWritesDone();
  }

  Caller* const caller_;
  Run* const run_;
  bool bulk_ = false;
  grpc::ClientContext ctx_;
  v1::LeaseResponse response_;  // the one read in flight
  v1::LeaseRequest write_;      // the one write in flight

  Mutex mu_;
  std::deque<v1::LeaseRequest> pending_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool want_writes_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_started_ ABSL_GUARDED_BY(mu_) = false;
  bool got_info_ ABSL_GUARDED_BY(mu_) = false;
  bool corrupt_ ABSL_GUARDED_BY(mu_) = false;
  std::string client_id_ ABSL_GUARDED_BY(mu_);
  std::string current_request_ ABSL_GUARDED_BY(mu_);
  std::string inbox_ ABSL_GUARDED_BY(mu_);
  int exchanges_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::time_point exchange_start_ ABSL_GUARDED_BY(mu_);
  Clock::time_point stream_start_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> latencies_ ABSL_GUARDED_BY(mu_);
};

void Caller::Continue() {
  // A completion that ran inline would recurse here; bound the depth.
  if (continue_depth > 16) {
    run_->Defer(this);
    return;
  }
  ++continue_depth;
  if (!run_->budget.Claim()) {
    --continue_depth;
    run_->CallerFinished();
    return;
  }
  ++stats_.operations;
  if (run_->options.mode == LoadMode::kCall) {
    StartCall();
  } else {
    new LeaseStream(this);  // deletes itself
  }
  --continue_depth;
}

void Caller::StartCall() {
  const LoadOptions& o = run_->options;
  auto* op = new CallOp;
  op->ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMicroseconds(o.timeout));
  op->request.set_backend(o.backend);
  op->request.set_request(NextRequest());
  if (!o.client_id.empty()) op->request.set_client_id(o.client_id);
  op->start = Clock::now();
  stub_->async()->Call(&op->ctx, &op->request, &op->response, [this, op](grpc::Status status) {
    const int64_t micros = MicrosSince(op->start);
    if (!status.ok()) {
      stats_.RecordError(CodeName(status.error_code()), ErrorMessage(op->ctx, status));
    } else if (!run_->payloads.IsExpectedResponse(op->request.request(),
                                                  op->response.response())) {
      ++stats_.corrupt;
    } else {
      ++stats_.ok;
      ++stats_.exchanges;
      stats_.latencies_us.push_back(micros);
      ++stats_.client_ids[op->response.lease().client_id()];
    }
    delete op;
    Continue();
  });
}

}  // namespace

absl::StatusOr<RunOutcome> RunLoad(const LoadOptions& o) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (o.insecure_plaintext) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    absl::StatusOr<std::string> ca = ReadFile(o.ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!o.cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadFile(o.cert_file);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFile(o.key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::BrokerService::Stub>> stubs;
  for (int i = 0; i < o.channels; ++i) {
    grpc::ChannelArguments args;
    // Each channel gets its own TCP connection rather than sharing one subchannel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("tlsbroker_load.channel", i);
    args.SetMaxReceiveMessageSize(128 << 20);
    args.SetMaxSendMessageSize(128 << 20);
    if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
    channels.push_back(grpc::CreateCustomChannel(o.target, creds, args));
    stubs.push_back(v1::BrokerService::NewStub(channels.back()));
  }
  // Connection setup is not part of the measurement; a broker that cannot be reached shows up
  // as UNAVAILABLE calls.
  for (auto& channel : channels) {
    channel->WaitForConnected(std::chrono::system_clock::now() +
                              std::min(absl::ToChronoMicroseconds(o.timeout),
                                       std::chrono::microseconds(5'000'000)));
  }

  const Clock::time_point start = Clock::now();
  const bool has_end = o.duration > absl::ZeroDuration();
  Run run(o, o.count, start + absl::ToChronoMicroseconds(o.duration), has_end);
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < o.callers; ++i) {
    callers.push_back(std::make_unique<Caller>(&run, stubs[i % stubs.size()].get(), i));
  }
  for (auto& caller : callers) caller->Continue();
  run.Wait(o.callers);

  RunOutcome outcome;
  outcome.elapsed = absl::FromChrono(Clock::now() - start);
  for (auto& caller : callers) outcome.stats.Merge(caller->stats());
  return outcome;
}

}  // namespace tlsbroker::load
