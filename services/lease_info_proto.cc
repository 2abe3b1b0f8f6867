#include "services/lease_info_proto.h"

namespace tlsbroker {

void ToProto(absl::Time time, google::protobuf::Timestamp* out) {
  timespec ts = absl::ToTimespec(time);
  out->set_seconds(ts.tv_sec);
  out->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

void ToProto(const TlsSessionInfo& tls, v1::PeerCertificate* out) {
  out->set_subject(tls.peer_subject);
  out->set_issuer(tls.peer_issuer);
  out->set_serial(tls.peer_serial);
  if (tls.peer_not_after) ToProto(*tls.peer_not_after, out->mutable_not_after());
  for (const std::string& san : tls.peer_sans) out->add_sans(san);
}

void ToProto(const LeaseInfo& info, bool include_lease_id, v1::LeaseInfo* out) {
  if (include_lease_id) out->set_lease_id(info.lease_id);
  out->set_backend(info.backend);
  out->set_client_id(info.client_id);
  out->set_socket_id(info.socket_id);
  out->set_reused(info.reused);
  out->set_leases_served(static_cast<uint32_t>(info.leases_served));
  ToProto(info.tls.authenticated_at, out->mutable_authenticated_at());
  out->set_tls_version(info.tls.tls_version);
  out->set_cipher(info.tls.cipher);
  out->set_session_resumed(info.tls.resumed);
  ToProto(info.tls, out->mutable_peer());
  absl::Duration wait = info.wait;
  out->mutable_wait()->set_seconds(absl::IDivDuration(wait, absl::Seconds(1), &wait));
  out->mutable_wait()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(wait)));
}

}  // namespace tlsbroker
