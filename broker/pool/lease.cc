#include "broker/pool/lease.h"

#include <vector>

#include <openssl/rand.h>

#include <asio/post.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "broker/common/log.h"
#include "broker/common/status_reason.h"
#include "broker/pool/lease_core.h"

namespace tlsbroker {
namespace {

std::string NewLeaseId() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // The CSPRNG failing is not something to paper over: a guessable lease ID is a security bug.
    LogEvent(LogLevel::kError, "RAND_bytes failed; aborting");
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

// ---- Lease ----

Lease::Lease(std::shared_ptr<LeaseCore> core) : core_(std::move(core)) {}
Lease::~Lease() { Release(); }
Lease::Lease(Lease&& other) noexcept : core_(std::move(other.core_)) {}
Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    core_ = std::move(other.core_);
  }
  return *this;
}

const LeaseInfo& Lease::info() const { return core_->info(); }
void Lease::Write(std::string bytes, StatusCallback done) {
  core_->Write(std::move(bytes), std::move(done));
}
void Lease::Read(size_t max_bytes, ReadCallback done) { core_->Read(max_bytes, std::move(done)); }
void Lease::ReadFrame(ReadCallback done) { core_->ReadFrame(std::move(done)); }
void Lease::MarkBroken(absl::string_view reason) { core_->MarkBroken(std::string(reason)); }
void Lease::SetTimeout(absl::Duration after, absl::Status status) {
  core_->SetTimeout(after, std::move(status));
}
bool Lease::wrote_any() const { return core_ != nullptr && core_->wrote_any(); }

void Lease::Release() {
  if (core_ == nullptr) return;
  core_->Release();
  core_.reset();
}

// ---- LeaseCore ----

std::shared_ptr<LeaseCore> LeaseCore::Create(std::shared_ptr<LeaseOwner> pool,
                                             std::shared_ptr<const BackendOptions> options,
                                             std::shared_ptr<BackendObserver> observer,
                                             std::shared_ptr<PooledSocket> socket, LeaseInfo info,
                                             std::string caller, std::string trace_parent) {
  info.lease_id = NewLeaseId();
  std::shared_ptr<LeaseCore> core(new LeaseCore(
      std::move(pool), std::move(options), std::move(observer), std::move(socket),
      std::move(info), std::move(caller), std::move(trace_parent)));
  core->StartMaxDurationTimer();
  return core;
}

LeaseCore::LeaseCore(std::shared_ptr<LeaseOwner> pool,
                     std::shared_ptr<const BackendOptions> options,
                     std::shared_ptr<BackendObserver> observer,
                     std::shared_ptr<PooledSocket> socket, LeaseInfo info, std::string caller,
                     std::string trace_parent)
    : pool_(std::move(pool)),
      options_(std::move(options)),
      observer_(std::move(observer)),
      socket_(std::move(socket)),
      info_(std::move(info)),
      caller_(std::move(caller)),
      trace_parent_(std::move(trace_parent)),
      granted_at_(absl::Now()),
      max_duration_timer_(socket_->tls->io()),
      timeout_timer_(socket_->tls->io()) {
  const FramingOptions& framing = options_->framing;
  if (framing.kind != FramingOptions::Kind::kNone) {
    auto req = FrameDecoder::Create(framing);
    auto resp = FrameDecoder::Create(framing);
    if (req.ok() && resp.ok()) {
      request_decoder_ = *std::move(req);
      response_decoder_ = *std::move(resp);
    }
  }
}

LeaseCore::~LeaseCore() = default;

void LeaseCore::StartMaxDurationTimer() {
  // Created on the caller's thread before anyone else can see the core; armed on the loop.
  auto self = shared_from_this();
  OnLoop([self] {
    self->max_duration_timer_.expires_after(
        absl::ToChronoNanoseconds(self->options_->pool.max_lease_duration));
    std::weak_ptr<LeaseCore> weak = self;
    self->max_duration_timer_.async_wait([weak](const asio::error_code& ec) {
      if (ec) return;
      if (auto core = weak.lock()) core->Reclaim();
    });
  });
}

void LeaseCore::Reclaim() {
  if (released_ || reclaimed_) return;
  reclaimed_ = true;
  broken_ = true;
  broken_reason_ = "max_lease_duration exceeded";
  LogEvent(LogLevel::kWarning, "lease reclaimed after max_lease_duration",
           absl::StrCat(LogField("backend", info_.backend), " ",
                        LogField("client_id", info_.client_id), " ",
                        LogField("lease_id", info_.lease_id), " ", LogField("caller", caller_)));
  socket_->tls->Close();
  observer_->OnSocketClosed("broken");
  observer_->OnLeaseEnded("reclaimed", absl::Now() - granted_at_);
  pool_->ForgetSocket(socket_);
}

void LeaseCore::Write(std::string bytes, Lease::StatusCallback done) {
  auto self = shared_from_this();
  OnLoop([self, bytes = std::move(bytes), done = std::move(done)]() mutable {
    if (!self->abort_status_.ok()) {
      self->Deliver(std::move(done), self->abort_status_);
      return;
    }
    if (self->broken_ || self->released_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError(
          absl::StrCat("lease is no longer usable: ", self->broken_reason_)));
      return;
    }
    if (self->write_in_flight_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError("a write is already in flight"));
      return;
    }
    if (self->request_decoder_) {
      auto consumed = self->request_decoder_->ConsumeAll(bytes);
      if (!consumed.ok()) {
        // Nothing was sent; the request stream is no longer trustworthy, so neither is the
        // socket, but the backend saw nothing of this request.
        self->BreakOnLoop(absl::StrCat("request framing: ", consumed.status().message()));
        self->Deliver(std::move(done), absl::InvalidArgumentError(absl::StrCat(
            "request does not fit the backend's framing: ", consumed.status().message())));
        return;
      }
    }
    self->write_in_flight_ = true;
    self->wrote_any_.store(true);
    size_t size = bytes.size();
    self->socket_->tls->Write(std::move(bytes), [self, size, done = std::move(done)](
                                                    absl::Status status) mutable {
      self->write_in_flight_ = false;
      if (status.ok()) {
        self->bytes_sent_ += size;
        self->observer_->OnBytes("sent", size);
        self->CountForRekey(size);
      } else {
        self->BreakOnLoop(std::string(status.message()), /*io_error=*/true);
        if (!self->abort_status_.ok()) status = self->abort_status_;
      }
      self->Deliver(std::move(done), std::move(status));
    });
  });
}

void LeaseCore::Read(size_t max_bytes, Lease::ReadCallback done) {
  auto self = shared_from_this();
  OnLoop([self, max_bytes, done = std::move(done)]() mutable {
    if (!self->abort_status_.ok()) {
      self->Deliver(std::move(done), self->abort_status_);
      return;
    }
    if (self->broken_ || self->released_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError(
          absl::StrCat("lease is no longer usable: ", self->broken_reason_)));
      return;
    }
    if (self->read_in_flight_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError("a read is already in flight"));
      return;
    }
    self->read_in_flight_ = true;
    self->socket_->tls->Read(max_bytes, [self, done = std::move(done)](
                                            absl::StatusOr<std::string> data) mutable {
      self->read_in_flight_ = false;
      if (!data.ok()) {
        // A read abandoned at release consumed nothing: the socket is still clean.
        if (!self->cancelling_read_) {
          self->BreakOnLoop(std::string(data.status().message()), /*io_error=*/true);
        }
        if (!self->abort_status_.ok()) data = self->abort_status_;
        self->Deliver(std::move(done), std::move(data));
        return;
      }
      self->bytes_received_ += data->size();
      self->observer_->OnBytes("received", data->size());
      self->CountForRekey(data->size());
      if (self->response_decoder_) {
        auto consumed = self->response_decoder_->ConsumeAll(*data);
        // The bytes are delivered as they are; a stream that broke the framing just may not
        // go back to the pool.
        if (!consumed.ok()) {
          self->BreakOnLoop(absl::StrCat("response framing: ", consumed.status().message()));
        }
      }
      self->Deliver(std::move(done), std::move(data));
    });
  });
}

void LeaseCore::ReadFrame(Lease::ReadCallback done) {
  auto self = shared_from_this();
  OnLoop([self, done = std::move(done)]() mutable {
    if (!self->abort_status_.ok()) {
      self->Deliver(std::move(done), self->abort_status_);
      return;
    }
    if (self->broken_ || self->released_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError(
          absl::StrCat("lease is no longer usable: ", self->broken_reason_)));
      return;
    }
    if (!self->response_decoder_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError("backend has no framing"));
      return;
    }
    if (self->read_in_flight_) {
      self->Deliver(std::move(done), absl::FailedPreconditionError("a read is already in flight"));
      return;
    }
    self->read_in_flight_ = true;
    self->ContinueReadFrame(std::string(), std::move(done));
  });
}

void LeaseCore::ContinueReadFrame(std::string acc, Lease::ReadCallback done) {
  // Ask for no more than the frame still needs when the framing says how much that is, so a
  // well-behaved backend never leaves bytes of the next frame in our buffer.
  size_t want = kReadChunk;
  const FramingOptions& framing = options_->framing;
  if (auto left = response_decoder_->BytesUntilFrameEnd()) {
    want = static_cast<size_t>(std::min<uint64_t>(*left, kReadChunk));
  } else if (framing.kind == FramingOptions::Kind::kLengthField) {
    uint64_t header = framing.length_field.offset + framing.length_field.size;
    if (response_decoder_->frame_bytes() < header) {
      want = static_cast<size_t>(header - response_decoder_->frame_bytes());
    }
  }
  auto self = shared_from_this();
  socket_->tls->Read(want, [self, acc = std::move(acc), done = std::move(done)](
                               absl::StatusOr<std::string> data) mutable {
    if (!data.ok()) {
      self->read_in_flight_ = false;
      // Abandoning a frame half read leaves the decoder mid-frame: released dirty anyway.
      if (!self->cancelling_read_) {
        self->BreakOnLoop(std::string(data.status().message()), /*io_error=*/true);
      }
      if (!self->abort_status_.ok()) data = self->abort_status_;
      self->Deliver(std::move(done), std::move(data).status());
      return;
    }
    self->bytes_received_ += data->size();
    self->observer_->OnBytes("received", data->size());
    self->CountForRekey(data->size());
    auto consumed = self->response_decoder_->Consume(*data);
    if (!consumed.ok()) {
      self->read_in_flight_ = false;
      self->BreakOnLoop(absl::StrCat("response framing: ", consumed.status().message()));
      if (consumed.status().code() == absl::StatusCode::kOutOfRange) {
        // A well-formed answer, just larger than this backend may send: the caller learns the
        // limit, not "bad frame".
        self->Deliver(std::move(done),
                      ReasonedError(absl::StatusCode::kResourceExhausted, "frame_too_large",
                                    absl::StrCat("the backend's response frame is too large: ",
                                                 consumed.status().message())));
        return;
      }
      self->Deliver(std::move(done),
                    ReasonedError(absl::StatusCode::kUnavailable, "bad_frame",
                                  absl::StrCat("the backend sent a bad frame: ",
                                               consumed.status().message())));
      return;
    }
    acc.append(data->data(), *consumed);
    bool complete = *consumed < data->size() || self->response_decoder_->AtBoundary();
    if (!complete) {
      self->ContinueReadFrame(std::move(acc), std::move(done));
      return;
    }
    self->read_in_flight_ = false;
    if (*consumed < data->size()) {
      // Bytes beyond the frame belong to nobody: never let them reach the next lease.
      self->BreakOnLoop("unread_bytes: the backend sent bytes after the response frame");
    }
    self->Deliver(std::move(done), std::move(acc));
  });
}

void LeaseCore::CountForRekey(size_t bytes) {
  // Counted by the socket, across leases: a socket serving many small Calls still rekeys.
  socket_->tls->CountBytesForKeyUpdate(bytes, options_->rekey_after_bytes);
}

void LeaseCore::BreakOnLoop(std::string reason, bool io_error) {
  if (broken_) return;
  broken_ = true;
  broken_by_io_error_ = io_error;
  broken_reason_ = std::move(reason);
}

void LeaseCore::MarkBroken(std::string reason) {
  auto self = shared_from_this();
  OnLoop([self, reason = std::move(reason)]() mutable {
    self->BreakOnLoop(std::move(reason));
    // Cancels whatever is in flight; its callback gets kCancelled.
    self->socket_->tls->Close();
  });
}

void LeaseCore::Abort(absl::Status status) {
  auto self = shared_from_this();
  OnLoop([self, status = std::move(status)]() mutable {
    self->AbortOnLoop(std::move(status), "lease aborted: its socket was retired",
                      /*io_error=*/true);
  });
}

void LeaseCore::SetTimeout(absl::Duration after, absl::Status status) {
  auto self = shared_from_this();
  OnLoop([self, after, status = std::move(status)]() mutable {
    if (self->released_) return;
    self->timeout_timer_.expires_after(absl::ToChronoNanoseconds(after));
    // Weak: a lease released before its timeout must not be kept alive by the timer.
    std::weak_ptr<LeaseCore> weak = self;
    self->timeout_timer_.async_wait(
        [weak, status = std::move(status)](const asio::error_code& ec) mutable {
          if (ec) return;
          if (auto core = weak.lock()) {
            core->AbortOnLoop(std::move(status), "lease timed out", /*io_error=*/false);
          }
        });
  });
}

void LeaseCore::AbortOnLoop(absl::Status status, absl::string_view what, bool io_error) {
  if (released_ || reclaimed_ || !abort_status_.ok()) return;
  LogEvent(LogLevel::kWarning, what,
           absl::StrCat(LogField("backend", info_.backend), " ",
                        LogField("client_id", info_.client_id), " ",
                        LogField("lease_id", info_.lease_id), " ", LogField("caller", caller_),
                        " ", LogField("error", status.message())));
  abort_status_ = std::move(status);
  BreakOnLoop(std::string(abort_status_.message()), io_error);
  // Cancels what is in flight (its callback gets abort_status_); nothing more reaches or
  // leaves the backend on this socket, so no byte can be misdelivered.
  socket_->tls->Close();
}

void LeaseCore::Release() {
  // Synchronously, so a caller that asks for a socket right after this one ended (the next
  // Call of the same client) waits for it rather than making the pool open another.
  pool_->NoteReturning(socket_);
  auto self = shared_from_this();
  OnLoop([self] {
    if (self->released_) return;
    self->released_ = true;
    self->max_duration_timer_.cancel();
    self->timeout_timer_.cancel();
    if (self->reclaimed_) return;  // Already closed and accounted for.
    if (self->read_in_flight_ && !self->broken_) {
      // A caller that ends its lease while the broker still waits for backend bytes (a Lease
      // stream always has such a read armed) leaves nothing unread if nothing has arrived.
      self->cancelling_read_ = true;
      self->socket_->tls->CancelRead();
      self->cancelling_read_ = false;
    }
    absl::Status verdict = absl::OkStatus();
    std::string close_reason = "dirty";
    if (self->broken_) {
      verdict = absl::AbortedError(self->broken_reason_);
      // "broken": the socket failed; "dirty": the exchange did not end cleanly (cancel, bad or
      // unfinished frame, unread bytes) on a socket that may still work.
      close_reason = self->broken_by_io_error_ ? "broken" : "dirty";
    } else if (self->read_in_flight_ || self->write_in_flight_) {
      verdict = absl::AbortedError("lease ended with a read or write in flight");
    } else if (!self->request_decoder_) {
      // Without framing no late byte can be proved absent: never reuse.
      verdict = absl::FailedPreconditionError("backend has no framing");
    } else if (!self->request_decoder_->AtBoundary()) {
      verdict = absl::FailedPreconditionError("lease ended in the middle of a request frame");
    } else if (!self->response_decoder_->AtBoundary()) {
      verdict = absl::FailedPreconditionError("lease ended in the middle of a response frame");
    } else if (self->response_decoder_->frames_completed() <
               self->request_decoder_->frames_completed()) {
      // Request/response framing: each request frame is owed one response frame. A response
      // still on its way when the lease ends would reach the next lease of this socket.
      verdict = absl::FailedPreconditionError(absl::StrCat(
          "lease ended owing ",
          self->request_decoder_->frames_completed() -
              self->response_decoder_->frames_completed(),
          " response frame(s): the backend may still answer"));
    } else if (self->response_decoder_->frames_completed() >
               self->request_decoder_->frames_completed()) {
      // More responses than requests: the backend broke the one-request-one-response rule, so
      // nothing says it will not send more; the next lease must never see them.
      verdict = absl::FailedPreconditionError(absl::StrCat(
          "extra_response: the backend sent ", self->response_decoder_->frames_completed(),
          " response frames for ", self->request_decoder_->frames_completed(), " request(s)"));
    } else {
      verdict = self->socket_->tls->CheckNothingUnread();
      if (!verdict.ok() && verdict.code() != absl::StatusCode::kFailedPrecondition) {
        close_reason = "broken";
      }
    }
    const absl::Duration held = absl::Now() - self->granted_at_;
    self->observer_->OnLeaseEnded(verdict.ok() ? "clean" : "broken", held);
    // One audit record per lease. Counts are typed fields: numbers, not strings, in JSON logs.
    std::vector<LogValue> fields = {
        LogValue::Str("backend", self->info_.backend),
        LogValue::Str("caller", self->caller_),
        LogValue::Str("client_id", self->info_.client_id),
        LogValue::Int("socket_id", static_cast<int64_t>(self->info_.socket_id)),
        LogValue::Int("bytes_sent", static_cast<int64_t>(self->bytes_sent_)),
        LogValue::Int("bytes_received", static_cast<int64_t>(self->bytes_received_)),
        LogValue::Int("duration_ms", absl::ToInt64Milliseconds(held)),
        LogValue::Str("result", verdict.ok() ? "clean" : "broken")};
    if (!verdict.ok()) fields.push_back(LogValue::Str("detail", verdict.message()));
    // Left out, not empty, when the caller sent none (or a bad one).
    if (!self->trace_parent_.empty()) {
      fields.push_back(LogValue::Str("traceparent", self->trace_parent_));
    }
    LogEventWith(LogLevel::kInfo, "lease ended", fields);
    self->pool_->ReturnSocket(self->socket_, verdict, close_reason);
  });
}

}  // namespace tlsbroker
