// In-process costs on the Call path besides the pool: building the LeaseInfo a caller receives
// (core struct -> API proto), and the MQ-style peer-name matcher run at every handshake.
// Baselines in the same binary: copying the same strings into a std::string (what any
// LeaseInfo must at least do) and one case-insensitive comparison of a DN attribute.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "broker/pool/lease.h"
#include "broker/tls/peer_name_filter.h"
#include "services/lease_info_proto.h"

namespace tlsbroker {
namespace {

LeaseInfo SampleLeaseInfo() {
  LeaseInfo info;
  info.backend = "ims-prod";
  info.lease_id = "0123456789abcdef0123456789abcdef";
  info.client_id = "TLSB0007";
  info.socket_id = 4711;
  info.slot = 7;
  info.reused = true;
  info.leases_served = 1234;
  info.wait = absl::Microseconds(37);
  info.tls.tls_version = "TLSv1.3";
  info.tls.cipher = "TLS_AES_256_GCM_SHA384";
  info.tls.resumed = true;
  info.tls.peer_subject = "CN=QM2.backend,OU=IBM,OU=WEBSPHERE,O=Example,C=GB";
  info.tls.peer_issuer = "CN=Example Intermediate CA,O=Example,C=GB";
  info.tls.peer_serial = "1003";
  info.tls.peer_not_after = absl::Now() + absl::Hours(24 * 365);
  info.tls.peer_sans = {"DNS:localhost", "IP:127.0.0.1", "URI:spiffe://example.org/backend/qm2"};
  info.tls.authenticated_at = absl::Now();
  return info;
}

void BM_BaselineCopyLeaseStrings(benchmark::State& state) {
  const LeaseInfo info = SampleLeaseInfo();
  for (auto _ : state) {
    std::string out;
    out.reserve(512);
    for (const std::string* s :
         {&info.backend, &info.lease_id, &info.client_id, &info.tls.tls_version, &info.tls.cipher,
          &info.tls.peer_subject, &info.tls.peer_issuer, &info.tls.peer_serial}) {
      out += *s;
    }
    for (const std::string& san : info.tls.peer_sans) out += san;
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_BaselineCopyLeaseStrings);

void BM_BuildLeaseInfoProto(benchmark::State& state) {
  const LeaseInfo info = SampleLeaseInfo();
  for (auto _ : state) {
    v1::LeaseInfo proto;
    ToProto(info, /*include_lease_id=*/true, &proto);
    benchmark::DoNotOptimize(proto);
  }
}
BENCHMARK(BM_BuildLeaseInfoProto);

void BM_BuildAndSerializeLeaseInfo(benchmark::State& state) {
  const LeaseInfo info = SampleLeaseInfo();
  for (auto _ : state) {
    v1::LeaseInfo proto;
    ToProto(info, /*include_lease_id=*/true, &proto);
    std::string bytes = proto.SerializeAsString();
    benchmark::DoNotOptimize(bytes);
  }
}
BENCHMARK(BM_BuildAndSerializeLeaseInfo);

const std::vector<DnAttribute>& SampleDn() {
  static const auto* dn = new std::vector<DnAttribute>{
      {"CN", "QM2.backend"}, {"OU", "IBM"}, {"OU", "WEBSPHERE"}, {"O", "Example"}, {"C", "GB"}};
  return *dn;
}

void BM_BaselineOneAttributeCompare(benchmark::State& state) {
  const auto& dn = SampleDn();
  for (auto _ : state) {
    bool eq = absl::EqualsIgnoreCase(dn[3].value, "example");
    benchmark::DoNotOptimize(eq);
  }
}
BENCHMARK(BM_BaselineOneAttributeCompare);

void BM_PeerNameMatch(benchmark::State& state) {
  auto filter = PeerNameFilter::Parse("CN=QM2*, OU=IBM, OU=WEBSPHERE, O=Example, C=GB");
  if (!filter.ok()) {
    state.SkipWithError("pattern did not parse");
    return;
  }
  const auto& dn = SampleDn();
  for (auto _ : state) {
    bool matched = filter->Matches(dn);
    benchmark::DoNotOptimize(matched);
  }
}
BENCHMARK(BM_PeerNameMatch);

void BM_PeerNameParse(benchmark::State& state) {
  for (auto _ : state) {
    auto filter = PeerNameFilter::Parse("CN=QM2*, OU=IBM, OU=WEBSPHERE, O=Example, C=GB");
    benchmark::DoNotOptimize(filter);
  }
}
BENCHMARK(BM_PeerNameParse);

}  // namespace
}  // namespace tlsbroker
