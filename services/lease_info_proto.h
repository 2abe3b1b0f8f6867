#ifndef SERVICES_LEASE_INFO_PROTO_H_
#define SERVICES_LEASE_INFO_PROTO_H_

#include "broker/pool/lease.h"
#include "tlsbroker/v1/broker.pb.h"

namespace tlsbroker {

// Fills the API's LeaseInfo from the core's. The lease ID is included only for admins.
void ToProto(const LeaseInfo& info, bool include_lease_id, v1::LeaseInfo* out);
void ToProto(const TlsSessionInfo& tls, v1::PeerCertificate* out);
void ToProto(absl::Time time, google::protobuf::Timestamp* out);

}  // namespace tlsbroker

#endif  // SERVICES_LEASE_INFO_PROTO_H_
