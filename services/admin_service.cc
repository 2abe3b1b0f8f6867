#include "services/admin_service.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "services/audit_log.h"
#include "services/caller_identity.h"
#include "services/caller_pattern.h"
#include "services/lease_info_proto.h"
#include "services/status_conversion.h"

namespace tlsbroker {

namespace {

// The core names a socket's state in words (its log lines use them); the API has an enum.
v1::SocketState SocketStateOf(absl::string_view state) {
  if (state == "connecting") return v1::SOCKET_STATE_CONNECTING;
  if (state == "idle") return v1::SOCKET_STATE_IDLE;
  if (state == "leased") return v1::SOCKET_STATE_LEASED;
  return v1::SOCKET_STATE_UNSPECIFIED;
}

// In the admin log line, the "backend" of an action on the whole broker.
constexpr char kWholeBroker[] = "*";

// Drain and Resume name exactly one of a backend and the whole broker.
absl::Status CheckTarget(absl::string_view backend, bool all) {
  if (backend.empty() && !all) {
    return absl::InvalidArgumentError(
        "name a backend, or set all to act on the whole broker");
  }
  if (!backend.empty() && all) {
    return absl::InvalidArgumentError(absl::StrCat(
        "both backend \"", backend, "\" and all are set; set one of them"));
  }
  return absl::OkStatus();
}

}  // namespace

bool AdminService::Authorize(grpc::CallbackServerContext* context,
                             grpc::ServerUnaryReactor* reactor, absl::string_view action,
                             absl::string_view backend) {
  std::string caller = CallerIdentity(*context);
  if (CallerAllowed(services_.registry->AdminCallers(), caller)) return true;
  absl::Status denied = absl::PermissionDeniedError(
      absl::StrCat("caller \"", caller, "\" is not on the admin list"));
  LogRefusal(action, caller, backend, kRefusedPermission, denied);
  reactor->Finish(FinishStatus(context, denied));
  return false;
}

void AdminService::FinishAction(grpc::CallbackServerContext* context,
                                grpc::ServerUnaryReactor* reactor, absl::string_view action,
                                absl::string_view backend, const absl::Status& status,
                                absl::string_view detail) {
  LogAdminAction(action, CallerIdentity(*context), backend, status, detail);
  reactor->Finish(status.ok() ? grpc::Status::OK : FinishStatus(context, status));
}

grpc::ServerUnaryReactor* AdminService::ListBackends(grpc::CallbackServerContext* context,
                                                     const v1::ListBackendsRequest*,
                                                     v1::ListBackendsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor, "ListBackends")) return reactor;
  for (const auto& pool : services_.registry->All()) {
    const std::shared_ptr<const BackendOptions> options_snapshot = pool->options();
    const BackendOptions& options = *options_snapshot;
    PoolStats stats = pool->Stats();
    v1::BackendStatus* b = response->add_backends();
    b->set_name(options.name);
    b->set_address(options.address);
    for (const BackendEndpoint& e : options.Endpoints()) b->add_addresses(e.address);
    b->set_max_sockets(stats.max_sockets);
    b->set_connecting(stats.connecting);
    b->set_idle(stats.idle);
    b->set_leased(stats.leased);
    b->set_waiters(stats.waiters);
    b->set_sockets_created(stats.sockets_created);
    b->set_handshakes_full(stats.handshakes_full);
    b->set_handshakes_resumed(stats.handshakes_resumed);
    b->set_leases_granted(stats.leases_granted);
    b->set_connect_failures(stats.connect_failures);
    b->set_last_failure(stats.last_failure);
    b->set_draining(services_.registry->IsDraining(options.name));
  }
  response->set_broker_draining(services_.registry->BrokerDraining());
  FinishAction(context, reactor, "ListBackends", kWholeBroker, absl::OkStatus());
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListSockets(grpc::CallbackServerContext* context,
                                                    const v1::ListSocketsRequest* request,
                                                    v1::ListSocketsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor, "ListSockets", request->backend())) return reactor;
  auto pool = services_.registry->Find(request->backend());
  if (pool == nullptr) {
    FinishAction(context, reactor, "ListSockets", request->backend(),
                 absl::NotFoundError(
                     absl::StrCat("unknown backend \"", request->backend(), "\"")));
    return reactor;
  }
  for (const SocketSnapshot& snap : pool->Sockets()) {
    v1::SocketStatus* s = response->add_sockets();
    s->set_client_id(snap.client_id);
    s->set_socket_id(snap.socket_id);
    s->set_slot(snap.slot);
    s->set_state(SocketStateOf(snap.state));
    if (snap.socket_id != 0) ToProto(snap.created_at, s->mutable_created_at());
    s->set_leases_served(snap.leases_served);
    s->set_bytes_sent(snap.bytes_sent);
    s->set_bytes_received(snap.bytes_received);
    s->set_tls_version(snap.tls.tls_version);
    s->set_cipher(snap.tls.cipher);
    s->set_session_resumed(snap.tls.resumed);
    ToProto(snap.tls, s->mutable_peer());
    s->set_lease_id(snap.lease_id);
    if (!snap.lease_caller.empty()) {
      s->set_holder(snap.lease_caller);
      ToProto(snap.lease_started_at, s->mutable_lease_started_at());
    }
  }
  FinishAction(context, reactor, "ListSockets", request->backend(), absl::OkStatus());
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Drain(grpc::CallbackServerContext* context,
                                              const v1::DrainRequest* request,
                                              v1::DrainResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string target = request->all() ? kWholeBroker : request->backend();
  if (!Authorize(context, reactor, "Drain", target)) return reactor;
  absl::Status valid = CheckTarget(request->backend(), request->all());
  if (!valid.ok()) {
    FinishAction(context, reactor, "Drain", target, valid);
    return reactor;
  }
  std::vector<std::shared_ptr<SocketPool>> pools;
  if (request->all()) {
    pools = services_.registry->All();
  } else if (auto pool = services_.registry->Find(request->backend()); pool != nullptr) {
    pools.push_back(std::move(pool));
  } else {
    FinishAction(context, reactor, "Drain", target,
                 absl::NotFoundError(
                     absl::StrCat("unknown backend \"", request->backend(), "\"")));
    return reactor;
  }
  uint32_t idle = 0, leased = 0;
  for (const auto& pool : pools) {
    PoolStats before = pool->Stats();
    idle += before.idle;
    leased += before.leased;
  }
  if (request->all()) {
    services_.registry->DrainAll();
  } else {
    services_.registry->Drain(request->backend());
  }
  response->set_closed_idle(idle);
  response->set_leased(leased);
  FinishAction(context, reactor, "Drain", target, absl::OkStatus(),
               absl::StrCat("closed_idle=", idle, " leased=", leased));
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Resume(grpc::CallbackServerContext* context,
                                               const v1::ResumeRequest* request,
                                               v1::ResumeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string target = request->all() ? kWholeBroker : request->backend();
  if (!Authorize(context, reactor, "Resume", target)) return reactor;
  absl::Status status = CheckTarget(request->backend(), request->all());
  if (status.ok() && request->all()) {
    absl::StatusOr<std::vector<std::string>> resumed = services_.registry->ResumeAll();
    status = resumed.status();
    if (resumed.ok()) {
      for (const std::string& name : *resumed) response->add_resumed(name);
    }
  } else if (status.ok()) {
    const bool was_draining = services_.registry->IsDraining(request->backend());
    status = services_.registry->Resume(request->backend());
    if (status.ok() && was_draining && !services_.registry->IsDraining(request->backend())) {
      response->add_resumed(request->backend());
    }
  }
  if (status.ok()) {
    for (const auto& pool : services_.registry->All()) {
      const std::string name = pool->options()->name;
      if (services_.registry->IsDraining(name)) response->add_still_draining(name);
    }
  }
  FinishAction(context, reactor, "Resume", target, status,
               status.ok() ? absl::StrCat("resumed=", absl::StrJoin(response->resumed(), ","),
                                          " still_draining=",
                                          absl::StrJoin(response->still_draining(), ","))
                           : "");
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Reload(grpc::CallbackServerContext* context,
                                               const v1::ReloadRequest*,
                                               v1::ReloadResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor, "Reload", kWholeBroker)) return reactor;
  if (!reload_) {
    FinishAction(context, reactor, "Reload", kWholeBroker,
                 absl::UnimplementedError("reload is not available in this server"));
    return reactor;
  }
  std::vector<std::string> errors = reload_();
  for (const std::string& e : errors) response->add_errors(e);
  response->set_applied(errors.empty());
  if (errors.empty()) {
    FinishAction(context, reactor, "Reload", kWholeBroker, absl::OkStatus());
  } else {
    FinishAction(context, reactor, "Reload", kWholeBroker,
                 absl::FailedPreconditionError(absl::StrCat(
                     "new configuration rejected, the running one stays:\n",
                     absl::StrJoin(errors, "\n"))));
  }
  return reactor;
}

}  // namespace tlsbroker
