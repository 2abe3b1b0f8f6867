#include "services/admin_service.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/caller_identity.h"
#include "services/caller_pattern.h"
#include "services/lease_info_proto.h"
#include "services/status_conversion.h"

namespace tlsbroker {

bool AdminService::Authorize(grpc::CallbackServerContext* context,
                             grpc::ServerUnaryReactor* reactor) {
  std::string caller = CallerIdentity(*context);
  if (CallerAllowed(services_.registry->AdminCallers(), caller)) return true;
  reactor->Finish(FinishStatus(
      context, absl::PermissionDeniedError(
                   absl::StrCat("caller \"", caller, "\" is not on the admin list"))));
  return false;
}

grpc::ServerUnaryReactor* AdminService::ListBackends(grpc::CallbackServerContext* context,
                                                     const v1::ListBackendsRequest*,
                                                     v1::ListBackendsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor)) return reactor;
  for (const auto& pool : services_.registry->All()) {
    const std::shared_ptr<const BackendOptions> options_snapshot = pool->options();
    const BackendOptions& options = *options_snapshot;
    PoolStats stats = pool->Stats();
    v1::BackendStatus* b = response->add_backends();
    b->set_name(options.name);
    b->set_address(options.address);
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
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListSockets(grpc::CallbackServerContext* context,
                                                    const v1::ListSocketsRequest* request,
                                                    v1::ListSocketsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor)) return reactor;
  auto pool = services_.registry->Find(request->backend());
  if (pool == nullptr) {
    reactor->Finish(FinishStatus(context, absl::NotFoundError(absl::StrCat(
                                              "unknown backend \"", request->backend(), "\""))));
    return reactor;
  }
  for (const SocketSnapshot& snap : pool->Sockets()) {
    v1::SocketStatus* s = response->add_sockets();
    s->set_client_id(snap.client_id);
    s->set_socket_id(snap.socket_id);
    s->set_slot(snap.slot);
    s->set_state(snap.state);
    if (snap.socket_id != 0) ToProto(snap.created_at, s->mutable_created_at());
    s->set_leases_served(snap.leases_served);
    s->set_bytes_sent(snap.bytes_sent);
    s->set_bytes_received(snap.bytes_received);
    s->set_tls_version(snap.tls.tls_version);
    s->set_cipher(snap.tls.cipher);
    s->set_session_resumed(snap.tls.resumed);
    ToProto(snap.tls, s->mutable_peer());
    s->set_lease_id(snap.lease_id);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Drain(grpc::CallbackServerContext* context,
                                              const v1::DrainRequest* request,
                                              v1::DrainResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor)) return reactor;
  auto pool = services_.registry->Find(request->backend());
  if (pool == nullptr) {
    reactor->Finish(FinishStatus(context, absl::NotFoundError(absl::StrCat(
                                              "unknown backend \"", request->backend(), "\""))));
    return reactor;
  }
  PoolStats before = pool->Stats();
  services_.registry->Drain(request->backend());
  response->set_closed_idle(before.idle);
  response->set_leased(before.leased);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Reload(grpc::CallbackServerContext* context,
                                               const v1::ReloadRequest*,
                                               v1::ReloadResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorize(context, reactor)) return reactor;
  if (!reload_) {
    reactor->Finish(FinishStatus(
        context, absl::UnimplementedError("reload is not available in this server")));
    return reactor;
  }
  std::vector<std::string> errors = reload_();
  for (const std::string& e : errors) response->add_errors(e);
  response->set_applied(errors.empty());
  if (errors.empty()) {
    reactor->Finish(grpc::Status::OK);
  } else {
    reactor->Finish(FinishStatus(
        context, absl::FailedPreconditionError(absl::StrCat(
                     "new configuration rejected, the running one stays:\n",
                     absl::StrJoin(errors, "\n")))));
  }
  return reactor;
}

}  // namespace tlsbroker
