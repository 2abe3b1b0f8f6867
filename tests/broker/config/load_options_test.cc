// Tests of the config loader: schema errors (unknown fields, wrong types) and semantic errors
// are each reported with their field path and line, and valid configs convert to the options
// every other module reads.

#include "broker/config/load_options.h"

#include <openssl/ssl.h>

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/broker/config/config_test_util.h"

namespace tlsbroker {
namespace {

using testing::AllErrors;
using testing::FindError;
using ::testing::HasSubstr;

// A valid backend, used as the base of most test configs (lines 1-5 of their YAML).
constexpr char kBackendHead[] =
    "backends:\n"                                           // 1
    "  - name: ims\n"                                       // 2
    "    address: ims.example:9999\n"                       // 3
    "    tls: {ca: pki/ec/ca-chain.pem}\n"                  // 4
    "    allowed_callers: [\"spiffe://example.org/*\"]\n";  // 5

class LoadOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeDirWithPki(); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);  // Removes the pki symlink, not the PKI.
  }

  // Configs without a listen section get an explicit plaintext loopback listener, appended at
  // the end so the line numbers the tests assert do not move.
  ConfigReport Load(const std::string& yaml, int ordinal = 0) {
    if (yaml.find("listen:") == std::string::npos) {
      return LoadConfig(yaml + "listen: {plaintext: true}\n", dir_, ordinal);
    }
    return LoadConfig(yaml, dir_, ordinal);
  }

  // Asserts an error at `path` on `line` whose message contains `text`.
  void ExpectError(const ConfigReport& report, const std::string& path, int line,
                   const std::string& text) {
    const ConfigError* e = FindError(report, path);
    ASSERT_NE(e, nullptr) << "no error at " << path << "; errors:\n" << AllErrors(report);
    EXPECT_EQ(e->line, line) << e->ToString();
    EXPECT_GT(e->column, 0) << e->ToString();
    EXPECT_THAT(e->message, HasSubstr(text)) << e->ToString();
  }

  std::string dir_;
};

// A backend with only the required fields loads, with every default from options.h.
TEST_F(LoadOptionsTest, MinimalBackendGetsDefaults) {
  const ConfigReport report = Load(kBackendHead);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  ASSERT_EQ(report.options.backends.size(), 1u);
  const BackendOptions& b = report.options.backends[0];
  EXPECT_EQ(b.name, "ims");
  EXPECT_EQ(b.host, "ims.example");
  EXPECT_EQ(b.port, 9999);
  EXPECT_EQ(b.server_name, "ims.example");  // Defaults to the address host.
  EXPECT_EQ(b.tls.ca_file, dir_ + "/pki/ec/ca-chain.pem");
  EXPECT_TRUE(b.tls.verify_server_name);
  EXPECT_TRUE(b.tls.session_resumption);
  EXPECT_EQ(b.tls.encryption, CipherPolicy::kStrong);
  EXPECT_EQ(b.pool.max_sockets, PoolOptions().max_sockets);
  EXPECT_EQ(b.pool.idle_timeout, absl::Minutes(5));
  EXPECT_EQ(b.pool.call_timeout, absl::Seconds(30));
  EXPECT_EQ(b.client_id.prefix, "TLSB");
  EXPECT_EQ(b.client_id.width, 8);
  EXPECT_TRUE(b.client_id.ims_rules);
  EXPECT_EQ(b.framing.kind, FramingOptions::Kind::kNone);
  EXPECT_EQ(report.options.listen.grpc, "127.0.0.1:7443");
  EXPECT_FALSE(report.options.listen.has_tls);
}

// Every option of a full backend is converted to its options field.
TEST_F(LoadOptionsTest, FullBackendConvertsEveryField) {
  const ConfigReport report = Load(R"(
listen:
  grpc: 0.0.0.0:7443
  metrics: 0.0.0.0:9464
  tls: {cert: pki/ec/server.fullchain.pem, key: pki/ec/server.key, client_ca: pki/ec/ca-chain.pem}
  admin_callers: [spiffe://example.org/ops/*]
  drain_grace_period: 1m
backends:
  - name: ims-prod
    address: "[::1]:9999"
    server_name: QM2.backend
    tls:
      ca: pki/ec/ca-chain.pem
      cert: pki/ec/client.fullchain.pem
      key: pki/ec/client.key
      encryption: WEAK
      cipher_list: "ECDHE-ECDSA-AES128-SHA"
      ciphersuites: TLS_AES_128_GCM_SHA256
      min_version: TLS1.2
      max_version: TLS1.3
      verify_server_name: false
      peer_name: "CN=QM2*, O=Example"
      issuer_name: "CN=*"
      san: {dns: [localhost], ip: ["127.0.0.1", "::1"], uri: ["spiffe://example.org/*"]}
      crl: [pki/ec/int.crl.pem, pki/ec/int.crl.der]
      crl_check: CHAIN
      ocsp: {mode: QUERY, responder_url: "http://127.0.0.1:18888", on_unknown: ALLOW,
             on_unreachable: ALLOW, timeout: 300ms, recheck_margin: 90s}
      session_resumption: false
    pool: {mode: PER_LEASE, min_idle: 2, max_sockets: 32, max_waiters: 10,
           max_leases_per_socket: 100, acquire_timeout: 30s, idle_timeout: 5m, max_lifetime: 1h,
           connect_timeout: 2s, handshake_timeout: 4s, max_lease_duration: 10m,
           backoff_initial: 50ms, backoff_max: 20s, call_timeout: 1500ms}
    client_id: {prefix: "T{ordinal}X", width: 6, ims_rules: true}
    framing:
      length_field: {offset: 2, size: 2, big_endian: false, adjustment: -2}
      max_frame_bytes: 4096
    allowed_callers: [spiffe://example.org/ns/payments/*]
    rekey_after_bytes: 1000000
)",
                                   /*ordinal=*/7);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const ListenOptions& l = report.options.listen;
  EXPECT_EQ(l.grpc, "0.0.0.0:7443");
  EXPECT_TRUE(l.has_tls);
  EXPECT_EQ(l.tls.key_file, dir_ + "/pki/ec/server.key");
  EXPECT_EQ(l.drain_grace_period, absl::Minutes(1));
  EXPECT_EQ(l.admin_callers, std::vector<std::string>{"spiffe://example.org/ops/*"});
  const BackendOptions& b = report.options.backends.at(0);
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 9999);
  EXPECT_EQ(b.server_name, "QM2.backend");
  EXPECT_EQ(b.tls.encryption, CipherPolicy::kWeak);
  EXPECT_EQ(b.tls.cipher_list, "ECDHE-ECDSA-AES128-SHA");
  EXPECT_EQ(b.tls.ciphersuites, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(b.tls.min_version, TLS1_2_VERSION);
  EXPECT_EQ(b.tls.max_version, TLS1_3_VERSION);
  EXPECT_FALSE(b.tls.verify_server_name);
  EXPECT_FALSE(b.tls.session_resumption);
  EXPECT_EQ(b.tls.peer_name, "CN=QM2*, O=Example");
  EXPECT_EQ(b.tls.issuer_name, "CN=*");
  EXPECT_EQ(b.tls.san_ip.size(), 2u);
  EXPECT_EQ(b.tls.crl_files.size(), 2u);
  EXPECT_TRUE(b.tls.crl_check_chain);
  EXPECT_EQ(b.tls.ocsp.mode, OcspMode::kQuery);
  EXPECT_EQ(b.tls.ocsp.on_unknown, FailPolicy::kAllow);
  EXPECT_EQ(b.tls.ocsp.on_unreachable, FailPolicy::kAllow);
  EXPECT_EQ(b.tls.ocsp.timeout, absl::Milliseconds(300));
  EXPECT_EQ(b.tls.ocsp.recheck_margin, absl::Seconds(90));
  EXPECT_EQ(b.pool.mode, PoolMode::kPerLease);
  EXPECT_EQ(b.pool.min_idle, 2);
  EXPECT_EQ(b.pool.max_sockets, 32);
  EXPECT_EQ(b.pool.max_waiters, 10);
  EXPECT_EQ(b.pool.max_leases_per_socket, 100);
  EXPECT_EQ(b.pool.acquire_timeout, absl::Seconds(30));
  EXPECT_EQ(b.pool.idle_timeout, absl::Minutes(5));
  EXPECT_EQ(b.pool.max_lifetime, absl::Hours(1));
  EXPECT_EQ(b.pool.max_lease_duration, absl::Minutes(10));
  EXPECT_EQ(b.pool.backoff_initial, absl::Milliseconds(50));
  EXPECT_EQ(b.pool.call_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(b.client_id.prefix, "T7X");  // {ordinal} filled in.
  EXPECT_EQ(b.framing.kind, FramingOptions::Kind::kLengthField);
  EXPECT_EQ(b.framing.length_field.offset, 2);
  EXPECT_EQ(b.framing.length_field.size, 2);
  EXPECT_FALSE(b.framing.length_field.big_endian);
  EXPECT_EQ(b.framing.length_field.adjustment, -2);
  EXPECT_EQ(b.framing.max_frame_bytes, 4096u);
  EXPECT_EQ(b.rekey_after_bytes, 1000000u);
}

// A field the schema does not have is named with its path and line, with a spelling hint.
TEST_F(LoadOptionsTest, UnknownFieldIsReportedWithPathAndLine) {
  const ConfigReport report = Load(absl::StrCat(kBackendHead, "    pool: {maxsockets: 3}\n"));
  ExpectError(report, "backends[0].pool.maxsockets", 6, "unknown field \"maxsockets\"");
  EXPECT_THAT(FindError(report, "backends[0].pool.maxsockets")->message,
              HasSubstr("did you mean \"max_sockets\""));
}

// A value of the wrong type is named with its path, line and the value found.
TEST_F(LoadOptionsTest, WrongTypeIsReportedWithPathAndLine) {
  const ConfigReport report =
      Load(absl::StrCat(kBackendHead, "    pool:\n      max_sockets: many\n"));
  ExpectError(report, "backends[0].pool.max_sockets", 7, "expected an integer, got \"many\"");
}

// Integers may be quoted (as Helm's `quote` writes them); booleans may not.
TEST_F(LoadOptionsTest, QuotedIntegerAcceptedQuotedBooleanRejected) {
  ConfigReport report = Load(absl::StrCat(kBackendHead, "    pool: {max_sockets: \"32\"}\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].pool.max_sockets, 32);
  report = Load(absl::StrCat(kBackendHead, "    client_id: {ims_rules: \"true\"}\n"));
  ExpectError(report, "backends[0].client_id.ims_rules", 6, "expected a boolean");
}

// A mapping where a scalar belongs, a scalar where a list belongs, and a bad enum name.
TEST_F(LoadOptionsTest, StructureAndEnumMistakesAreReported) {
  const ConfigReport report = Load(absl::StrCat(kBackendHead,
                                                "    framing: 4\n"               // 6
                                                "    pool: {mode: SOMETIMES}\n"  // 7
                                                "    name2: x\n"));              // 8
  ExpectError(report, "backends[0].framing", 6, "expected a mapping, got \"4\"");
  ExpectError(report, "backends[0].pool.mode", 7, "one of PERSISTENT, PER_LEASE");
  ExpectError(report, "backends[0].name2", 8, "unknown field");
  const ConfigReport list = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls: {ca: pki/ec/ca-chain.pem, crl: x.pem}\n");
  ExpectError(list, "backends[0].tls.crl", 4, "expected a list of strings");
}

// "30s", "5m" and "1h" parse; text that is not a duration is reported.
TEST_F(LoadOptionsTest, DurationsParseAndBadDurationIsReported) {
  ConfigReport report = Load(absl::StrCat(
      kBackendHead, "    pool: {acquire_timeout: 30s, idle_timeout: 5m, max_lifetime: 1h}\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].pool.acquire_timeout, absl::Seconds(30));
  EXPECT_EQ(report.options.backends[0].pool.idle_timeout, absl::Minutes(5));
  EXPECT_EQ(report.options.backends[0].pool.max_lifetime, absl::Hours(1));
  report = Load(absl::StrCat(kBackendHead, "    pool: {connect_timeout: 30}\n"));
  ExpectError(report, "backends[0].pool.connect_timeout", 6, "expected a duration");
  report = Load(absl::StrCat(kBackendHead, "    pool: {connect_timeout: soon}\n"));
  ExpectError(report, "backends[0].pool.connect_timeout", 6, "got \"soon\"");
}

// Zero and negative durations are rejected.
TEST_F(LoadOptionsTest, ZeroAndNegativeDurationsAreRejected) {
  const ConfigReport report =
      Load(absl::StrCat(kBackendHead, "    pool: {idle_timeout: 0s, max_lifetime: -5m}\n"));
  ExpectError(report, "backends[0].pool.idle_timeout", 6, "must be a positive duration");
  ExpectError(report, "backends[0].pool.max_lifetime", 6, "must be a positive duration");
}

// pool.call_timeout must be a positive duration; one longer than max_lease_duration (which
// would end the Call first) is accepted with a warning naming both.
TEST_F(LoadOptionsTest, CallTimeoutMustBePositiveAndIsWarnedAboveMaxLeaseDuration) {
  ConfigReport report = Load(absl::StrCat(kBackendHead, "    pool: {call_timeout: 0s}\n"));
  ExpectError(report, "backends[0].pool.call_timeout", 6, "must be a positive duration");
  report = Load(absl::StrCat(kBackendHead, "    pool: {call_timeout: -300ms}\n"));
  ExpectError(report, "backends[0].pool.call_timeout", 6, "must be a positive duration");
  report = Load(absl::StrCat(kBackendHead, "    pool: {call_timeout: later}\n"));
  ExpectError(report, "backends[0].pool.call_timeout", 6, "expected a duration");

  report = Load(
      absl::StrCat(kBackendHead, "    pool: {call_timeout: 2h, max_lease_duration: 90m}\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].pool.call_timeout, absl::Hours(2));
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_EQ(report.warnings[0].field_path, "backends[0].pool.call_timeout");
  EXPECT_THAT(report.warnings[0].message, HasSubstr("longer than max_lease_duration (1h30m)"));

  report = Load(absl::StrCat(kBackendHead, "    pool: {call_timeout: 300ms}\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].pool.call_timeout, absl::Milliseconds(300));
  EXPECT_TRUE(report.warnings.empty());
}

// min_idle above max_sockets, and max_sockets below 1, are rejected.
TEST_F(LoadOptionsTest, PoolSizesAreChecked) {
  ConfigReport report =
      Load(absl::StrCat(kBackendHead, "    pool: {min_idle: 9, max_sockets: 8}\n"));
  ExpectError(report, "backends[0].pool.min_idle", 6, "must not exceed max_sockets (8)");
  report = Load(absl::StrCat(kBackendHead, "    pool: {max_sockets: 0}\n"));
  ExpectError(report, "backends[0].pool.max_sockets", 6, "must be 1 or more");
  report = Load(absl::StrCat(kBackendHead, "    pool: {max_waiters: -1}\n"));
  ExpectError(report, "backends[0].pool.max_waiters", 6, "must be 0 or more");
}

// Two backends with one name: the second is reported, pointing at the first.
TEST_F(LoadOptionsTest, DuplicateBackendNameIsRejected) {
  const ConfigReport report = Load(absl::StrCat(kBackendHead,
                                                "    client_id: {prefix: A}\n"  // 6
                                                "  - name: ims\n"               // 7
                                                "    address: other:1\n"
                                                "    tls: {ca: pki/ec/ca-chain.pem}\n"
                                                "    client_id: {prefix: B}\n"));
  ExpectError(report, "backends[1].name", 7, "duplicate backend name \"ims\"");
  EXPECT_THAT(FindError(report, "backends[1].name")->message, HasSubstr("line 2"));
}

// Name, address and CA are required; the address needs a port from 1 to 65535.
TEST_F(LoadOptionsTest, RequiredFieldsAndAddressAreChecked) {
  ConfigReport report = Load("backends:\n  - pool: {max_sockets: 2}\n");
  ExpectError(report, "backends[0].name", 2, "required");
  ExpectError(report, "backends[0].address", 2, "required");
  ExpectError(report, "backends[0].tls.ca", 2, "required");
  report =
      Load("backends:\n  - name: a\n    address: host:65536\n    tls: {ca: pki/ec/ca-chain.pem}\n");
  ExpectError(report, "backends[0].address", 3, "port \"65536\"");
  report =
      Load("backends:\n  - name: a\n    address: ::1:80\n    tls: {ca: pki/ec/ca-chain.pem}\n");
  ExpectError(report, "backends[0].address", 3, "brackets");
  report = Load("listen: {grpc: 127.0.0.1:1}\nbackends: []\n");
  ExpectError(report, "backends", 2, "at least one backend");
}

// `addresses` lists several host:port of one backend, kept in order; the first also fills
// address/host/port, and server_name defaults to their common host.
TEST_F(LoadOptionsTest, AddressesAreParsedInOrder) {
  const ConfigReport report = Load(
      "backends:\n  - name: ims\n    addresses: [ims.example:9999, \"ims.example:9998\"]\n"
      "    tls: {ca: pki/ec/ca-chain.pem}\n    allowed_callers: [\"spiffe://example.org/*\"]\n");
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const BackendOptions& b = report.options.backends[0];
  ASSERT_EQ(b.endpoints.size(), 2u);
  EXPECT_EQ(b.endpoints[0].address, "ims.example:9999");
  EXPECT_EQ(b.endpoints[1].host, "ims.example");
  EXPECT_EQ(b.endpoints[1].port, 9998);
  EXPECT_EQ(b.address, "ims.example:9999");
  EXPECT_EQ(b.port, 9999);
  EXPECT_EQ(b.server_name, "ims.example");
  ASSERT_EQ(b.Endpoints().size(), 2u);
  // A single `address` is one endpoint.
  const ConfigReport single = Load(kBackendHead);
  ASSERT_TRUE(single.ok()) << AllErrors(single);
  ASSERT_EQ(single.options.backends[0].Endpoints().size(), 1u);
  EXPECT_EQ(single.options.backends[0].Endpoints()[0].address, "ims.example:9999");
}

// address and addresses together, a bad or repeated entry, and hosts that differ without a
// server_name are errors that name the backend or the entry.
TEST_F(LoadOptionsTest, AddressesMistakesAreReported) {
  ConfigReport report = Load(
      "backends:\n  - name: ims\n    address: a:1\n    addresses: [a:2]\n"
      "    tls: {ca: pki/ec/ca-chain.pem}\n");
  const ConfigError* both = FindError(report, "backends[0].addresses");
  ASSERT_NE(both, nullptr) << AllErrors(report);
  EXPECT_THAT(both->message, HasSubstr("backend \"ims\" sets both address and addresses"));

  report = Load(
      "backends:\n  - name: ims\n    addresses: [a:1, a:99999, a:1]\n"
      "    tls: {ca: pki/ec/ca-chain.pem}\n");
  const ConfigError* bad = FindError(report, "backends[0].addresses[1]");
  ASSERT_NE(bad, nullptr) << AllErrors(report);
  EXPECT_THAT(bad->message, HasSubstr("port \"99999\""));
  const ConfigError* twice = FindError(report, "backends[0].addresses[2]");
  ASSERT_NE(twice, nullptr) << AllErrors(report);
  EXPECT_THAT(twice->message, HasSubstr("listed twice"));

  report = Load(
      "backends:\n  - name: ims\n    addresses: [a.example:1, b.example:1]\n"
      "    tls: {ca: pki/ec/ca-chain.pem}\n");
  const ConfigError* hosts = FindError(report, "backends[0].server_name");
  ASSERT_NE(hosts, nullptr) << AllErrors(report);
  EXPECT_THAT(hosts->message, HasSubstr("different hosts"));
  report = Load(
      "backends:\n  - name: ims\n    addresses: [a.example:1, b.example:1]\n"
      "    server_name: ims.example\n    tls: {ca: pki/ec/ca-chain.pem}\n"
      "    allowed_callers: [\"spiffe://example.org/*\"]\n");
  EXPECT_TRUE(report.ok()) << AllErrors(report);

  report = Load("backends:\n  - name: ims\n    tls: {ca: pki/ec/ca-chain.pem}\n");
  const ConfigError* none = FindError(report, "backends[0].address");
  ASSERT_NE(none, nullptr) << AllErrors(report);
  EXPECT_THAT(none->message, HasSubstr("required for backend \"ims\""));
}

// A file that does not exist is named, resolved against the config's directory.
TEST_F(LoadOptionsTest, MissingFileIsReported) {
  const ConfigReport report =
      Load("backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/nope.pem\n");
  ExpectError(report, "backends[0].tls.ca", 5, "does not exist");
  EXPECT_THAT(FindError(report, "backends[0].tls.ca")->message,
              HasSubstr(dir_ + "/pki/ec/nope.pem"));
}

// A file that is not a certificate, or a broken certificate, is reported.
TEST_F(LoadOptionsTest, UnparsableCertificateIsReported) {
  testing::WriteFile(dir_ + "/garbage.pem", "hello\n");
  testing::WriteFile(dir_ + "/broken.pem",
                     "-----BEGIN CERTIFICATE-----\nMIIBnotbase64!!\n-----END CERTIFICATE-----\n");
  const ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n"
      "      ca: garbage.pem\n"   // 5
      "      cert: broken.pem\n"  // 6
      "      key: pki/ec/client.key\n");
  ExpectError(report, "backends[0].tls.ca", 5, "no readable PEM certificate");
  ExpectError(report, "backends[0].tls.cert", 6, "no readable PEM certificate");
}

// A key from another pair than the certificate is rejected at the key's line.
TEST_F(LoadOptionsTest, KeyNotMatchingCertificateIsRejected) {
  const ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      cert: pki/ec/client.crt\n"    // 6
      "      key: pki/ec/client2.key\n");  // 7
  ExpectError(report, "backends[0].tls.key", 7, "does not match the certificate");
}

// A certificate without its key (and the reverse) is rejected; a matching pair loads.
TEST_F(LoadOptionsTest, CertificateAndKeyComeTogether) {
  ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      cert: pki/rsa/client.fullchain.pem\n");
  // A missing field is reported where its parent mapping starts.
  ExpectError(report, "backends[0].tls.key", 5, "required when cert is set");
  report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      cert: pki/rsa/client.fullchain.pem\n      key: pki/rsa/client.key\n");
  EXPECT_TRUE(report.ok()) << AllErrors(report);
}

// CRLs load in PEM and in DER; anything else is rejected.
TEST_F(LoadOptionsTest, CrlsArePemOrDer) {
  ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      crl: [pki/ec/int.crl.pem, pki/rsa/int.crl.der, pki/ec/crl-chain.pem]\n");
  EXPECT_TRUE(report.ok()) << AllErrors(report);
  report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      crl: [pki/ec/int.crl.pem, pki/ec/root.crt]\n");
  ExpectError(report, "backends[0].tls.crl[1]", 6, "is not a CRL");
}

// The re-check keys: defaults, every value, "0s" turning file watching off, and mistakes
// reported with their path.
TEST_F(LoadOptionsTest, RevocationAndRotationKeysConvertAndValidate) {
  ConfigReport report = Load(kBackendHead);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const TlsOptions& defaults = report.options.backends[0].tls;
  EXPECT_EQ(defaults.on_revoked, RevokedLeasePolicy::kFinishLease);
  EXPECT_EQ(defaults.stale_crl, StaleCrlPolicy::kWarn);
  EXPECT_EQ(defaults.on_rotation, RotationPolicy::kKeepUntilLifetime);
  EXPECT_EQ(defaults.watch_interval, absl::Seconds(2));
  EXPECT_EQ(defaults.expiry_margin, absl::Seconds(30));

  report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      on_revoked: ABORT_LEASE\n      stale_crl: FAIL\n      on_rotation: DRAIN\n"
      "      watch_interval: 0s\n      expiry_margin: 2m\n");
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  const TlsOptions& tls = report.options.backends[0].tls;
  EXPECT_EQ(tls.on_revoked, RevokedLeasePolicy::kAbortLease);
  EXPECT_EQ(tls.stale_crl, StaleCrlPolicy::kFail);
  EXPECT_EQ(tls.on_rotation, RotationPolicy::kDrain);
  EXPECT_EQ(tls.watch_interval, absl::ZeroDuration());
  EXPECT_EQ(tls.expiry_margin, absl::Minutes(2));

  report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      on_revoked: LATER\n      watch_interval: often\n      expiry_margin: -5s\n");
  ExpectError(report, "backends[0].tls.on_revoked", 6, "FINISH_LEASE");
  ExpectError(report, "backends[0].tls.watch_interval", 7, "expected a duration");
  ExpectError(report, "backends[0].tls.expiry_margin", 8, "positive");
}

// Lower case, HWS and overlong prefixes break the IMS Connect client ID rules.
TEST_F(LoadOptionsTest, ClientIdPrefixFollowsImsRules) {
  ConfigReport report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: tlsb}\n"));
  ExpectError(report, "backends[0].client_id.prefix", 6, "upper case");
  report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: HWSA}\n"));
  ExpectError(report, "backends[0].client_id.prefix", 6, "HWS");
  report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: ABCDEFGH}\n"));
  ExpectError(report, "backends[0].client_id.prefix", 6, "leaves no digits");
  report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: AB, width: 9}\n"));
  ExpectError(report, "backends[0].client_id.width", 6, "from 1 to 8");
  report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: \"A-B\"}\n"));
  ExpectError(report, "backends[0].client_id.prefix", 6, "not allowed");
  // Without the IMS rules, longer and lower-case IDs are fine.
  report = Load(
      absl::StrCat(kBackendHead, "    client_id: {prefix: conn-, width: 12, ims_rules: false}\n"));
  EXPECT_TRUE(report.ok()) << AllErrors(report);
}

// The digits left after the prefix must number at least max_sockets IDs.
TEST_F(LoadOptionsTest, ClientIdWidthMustFitMaxSockets) {
  ConfigReport report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: TLSB, width: 6}\n",
                                          "    pool: {max_sockets: 99}\n"));
  EXPECT_TRUE(report.ok()) << AllErrors(report);  // Slots from 1: TLSB01 .. TLSB99.
  report = Load(absl::StrCat(kBackendHead, "    client_id: {prefix: TLSB, width: 6}\n",
                             "    pool: {max_sockets: 100}\n"));
  ExpectError(report, "backends[0].client_id.width", 6, "fewer than max_sockets (100)");
}

// {ordinal} is filled from the ordinal argument, or from HOSTNAME's suffix.
TEST_F(LoadOptionsTest, OrdinalFillsThePrefix) {
  const ConfigReport report =
      Load(absl::StrCat(kBackendHead, "    client_id: {prefix: \"B{ordinal}X\"}\n"), 12);
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].client_id.prefix, "B12X");
  EXPECT_EQ(OrdinalFromHostname("tlsbroker-3"), 3);
  EXPECT_EQ(OrdinalFromHostname("tls-broker-17"), 17);
  EXPECT_EQ(OrdinalFromHostname("tlsbroker"), 0);
  EXPECT_EQ(OrdinalFromHostname("tlsbroker-abc"), 0);
}

// Two backends whose ID ranges overlap are rejected; disjoint ranges are fine.
TEST_F(LoadOptionsTest, CollidingClientIdsAreRejected) {
  const std::string second =
      "  - name: mq\n"  // 7
      "    address: mq:1414\n"
      "    tls: {ca: pki/ec/ca-chain.pem}\n"
      "    client_id: {prefix: TLSB1}\n";  // 10
  // ims mints TLSB0001..TLSB2000; mq mints TLSB1001..: overlap.
  ConfigReport report = Load(absl::StrCat(kBackendHead, "    pool: {max_sockets: 2000}\n", second));
  ExpectError(report, "backends[1].client_id.prefix", 10, "collide with backend \"ims\"");
  EXPECT_THAT(FindError(report, "backends[1].client_id.prefix")->message, HasSubstr("TLSB1001"));
  // With at most 1000 sockets ims stops at TLSB1000: no overlap.
  report = Load(absl::StrCat(kBackendHead, "    pool: {max_sockets: 1000}\n", second));
  EXPECT_TRUE(report.ok()) << AllErrors(report);
  // The same prefix always collides.
  report = Load(absl::StrCat(kBackendHead, "  - name: mq\n    address: mq:1414\n",
                             "    tls: {ca: pki/ec/ca-chain.pem}\n"));
  ExpectError(report, "backends[1].client_id.prefix", 6, "collide");
}

// ENULL needs the explicit opt-in; with it the config loads with a warning.
TEST_F(LoadOptionsTest, EnullNeedsExplicitOptIn) {
  ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/rsa/ca-chain.pem\n"
      "      encryption: ENULL\n");  // 6
  ExpectError(report, "backends[0].tls.encryption", 6, "allow_null_encryption: true");
  report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/rsa/ca-chain.pem\n"
      "      encryption: ENULL\n      allow_null_encryption: true\n"
      "    allowed_callers: [x]\n");
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].tls.encryption, CipherPolicy::kEnull);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_THAT(report.warnings[0].message, HasSubstr("not encrypted"));
}

// Length fields are 1, 2, 4 or 8 bytes; delimiters are non-empty; one kind at a time.
TEST_F(LoadOptionsTest, FramingIsChecked) {
  ConfigReport report =
      Load(absl::StrCat(kBackendHead, "    framing: {length_field: {size: 3}}\n"));
  ExpectError(report, "backends[0].framing.length_field.size", 6, "must be 1, 2, 4 or 8");
  report = Load(absl::StrCat(kBackendHead, "    framing: {delimiter: \"\"}\n"));
  ExpectError(report, "backends[0].framing.delimiter", 6, "must not be empty");
  report =
      Load(absl::StrCat(kBackendHead, "    framing: {delimiter: x, length_field: {size: 4}}\n"));
  ExpectError(report, "backends[0].framing.length_field", 6, "only one of");
  report = Load(absl::StrCat(kBackendHead, "    framing: {max_frame_bytes: 0, delimiter: x}\n"));
  ExpectError(report, "backends[0].framing.max_frame_bytes", 6, "must be 1 or more");
  report = Load(absl::StrCat(kBackendHead, "    framing: {delimiter: \"\\r\\n\"}\n"));
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].framing.delimiter, "\r\n");  // YAML escapes work.
}

// TLS version names convert to OpenSSL constants; others, and min above max, are rejected.
TEST_F(LoadOptionsTest, TlsVersionsAreChecked) {
  EXPECT_EQ(*ParseTlsVersion("TLS1.3"), TLS1_3_VERSION);
  EXPECT_FALSE(ParseTlsVersion("SSL3").ok());
  const ConfigReport report = Load(
      "backends:\n  - name: a\n    address: a:1\n    tls:\n      ca: pki/ec/ca-chain.pem\n"
      "      min_version: TLS1.3\n"  // 6
      "      max_version: TLS1.2\n"  // 7
      "  - name: b\n    address: b:1\n    client_id: {prefix: B}\n    tls:\n"
      "      ca: pki/ec/ca-chain.pem\n"
      "      max_version: TLS1.1\n");  // 13
  ExpectError(report, "backends[0].tls.min_version", 6, "above max_version");
  ExpectError(report, "backends[1].tls.max_version", 13, "expected \"TLS1.2\" or \"TLS1.3\"");
}

// A non-loopback gRPC address needs listen.tls, and listen.tls needs all three files.
TEST_F(LoadOptionsTest, ListenTlsIsRequiredOffLoopback) {
  ConfigReport report = Load(absl::StrCat("listen:\n  grpc: 0.0.0.0:7443\n", kBackendHead));
  ExpectError(report, "listen.tls", 2, "mTLS");
  // Loopback or unix without TLS still needs the explicit opt-in ...
  report = Load(absl::StrCat("listen:\n  grpc: unix:/run/b.sock\n", kBackendHead));
  ExpectError(report, "listen.tls", 2, "listen.plaintext: true");
  // ... and is fine with it.
  report = Load(absl::StrCat("listen:\n  grpc: unix:/run/b.sock\n  plaintext: true\n",
                             kBackendHead));
  EXPECT_TRUE(report.ok()) << AllErrors(report);
  report = Load(absl::StrCat("listen:\n  tls: {cert: pki/ec/server.crt, key: pki/ec/server.key}\n",
                             kBackendHead));
  ExpectError(report, "listen.tls.client_ca", 2, "required");
}

// A YAML syntax error is one error with its line.
TEST_F(LoadOptionsTest, YamlSyntaxErrorHasItsLine) {
  const ConfigReport report = Load("backends:\n  - name: [a\n");
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_THAT(report.errors[0].message, HasSubstr("YAML syntax"));
  EXPECT_GE(report.errors[0].line, 2);
}

// A config with many mistakes of every kind reports each one, in file order.
TEST_F(LoadOptionsTest, BrokenConfigReportsEveryMistake) {
  const ConfigReport report = Load(R"(listen:
  drain_grace_period: soon
backends:
  - name: a
    address: a:1
    tls:
      ca: pki/ec/nope.pem
      cert: pki/ec/client.crt
      key: pki/rsa/client.key
      encryption: ENULL
      colour: blue
    pool: {min_idle: 40, max_sockets: 8, idle_timeout: -5s, max_waiters: many}
    client_id: {prefix: tlsb}
    framing: {length_field: {size: 3}}
  - name: a
    address: b:1
    tls: {ca: pki/ec/ca-chain.pem}
)");
  const std::vector<std::pair<std::string, int>> expected = {
      {"listen.tls", 2},  // Neither tls nor an explicit plaintext: true.
      {"listen.drain_grace_period", 2},
      {"backends[0].tls.ca", 7},
      {"backends[0].tls.key", 9},
      {"backends[0].tls.encryption", 10},
      {"backends[0].tls.colour", 11},
      {"backends[0].pool.min_idle", 12},
      {"backends[0].pool.idle_timeout", 12},
      {"backends[0].pool.max_waiters", 12},
      {"backends[0].client_id.prefix", 13},
      {"backends[0].framing.length_field.size", 14},
      {"backends[1].name", 15},
  };
  for (const auto& [path, line] : expected) {
    const ConfigError* e = FindError(report, path);
    ASSERT_NE(e, nullptr) << "missing " << path << "; errors:\n" << AllErrors(report);
    EXPECT_EQ(e->line, line) << e->ToString();
  }
  EXPECT_EQ(report.errors.size(), expected.size()) << AllErrors(report);
  for (size_t i = 1; i < report.errors.size(); ++i) {
    EXPECT_LE(report.errors[i - 1].line, report.errors[i].line);
  }
}

// The StatusOr wrappers: InvalidArgument listing every error, or the options.
TEST_F(LoadOptionsTest, LoadOptionsWrappersReturnAllErrorsOrOptions) {
  absl::StatusOr<BrokerOptions> options =
      LoadOptionsFromString(
          "backends:\n  - name: a\n    pool: {max_sockets: 0}\nlisten: {plaintext: true}\n", dir_, 0);
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(),
              HasSubstr("3:25: backends[0].pool.max_sockets: must be 1 or more"));
  EXPECT_THAT(options.status().message(), HasSubstr("2:5: backends[0].address: required"));

  const std::string path = dir_ + "/config.yaml";
  testing::WriteFile(path, absl::StrCat(kBackendHead, "listen: {plaintext: true}\n"));
  options = LoadOptionsFromFile(path, 0);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->backends.at(0).tls.ca_file, dir_ + "/pki/ec/ca-chain.pem");
  EXPECT_FALSE(LoadOptionsFromFile(dir_ + "/missing.yaml", 0).ok());
}

}  // namespace
}  // namespace tlsbroker

namespace tlsbroker {
namespace {

class KeystoreConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeDirWithPki(); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ConfigReport Load(const std::string& tls_lines) {
    return LoadConfig(absl::StrCat("backends:\n  - name: a\n    address: a:1\n    tls:\n"
                                   "      ca: pki/ec/ca-chain.pem\n",
                                   tls_lines,
                                   "    allowed_callers: [\"x\"]\nlisten: {plaintext: true}\n"),
                      dir_, 0);
  }
  std::string dir_;
};

TEST_F(KeystoreConfigTest, Pkcs12WithPasswordFileLoads) {
  const ConfigReport report =
      Load("      pkcs12: pki/ec/client.p12\n      password_file: pki/ec/client.p12.pass\n");
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].tls.pkcs12_file, dir_ + "/pki/ec/client.p12");
  EXPECT_EQ(report.options.backends[0].tls.password_file, dir_ + "/pki/ec/client.p12.pass");
}

TEST_F(KeystoreConfigTest, Pkcs12WrongPasswordIsAnErrorNamingTheFileNotThePassword) {
  testing::WriteFile(dir_ + "/wrong.pass", "s3cr3t-wrong\n");
  const ConfigReport report =
      Load("      pkcs12: pki/ec/client.p12\n      password_file: wrong.pass\n");
  const ConfigError* e = FindError(report, "backends[0].tls.pkcs12");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("wrong password"));
  EXPECT_THAT(e->message, HasSubstr("client.p12"));
  EXPECT_THAT(AllErrors(report), ::testing::Not(HasSubstr("s3cr3t-wrong")));
}

TEST_F(KeystoreConfigTest, Pkcs12WithoutPasswordFileOrWithCertIsAnError) {
  ConfigReport report = Load("      pkcs12: pki/ec/client.p12\n");
  ASSERT_NE(FindError(report, "backends[0].tls.password_file"), nullptr) << AllErrors(report);
  report = Load(
      "      pkcs12: pki/ec/client.p12\n      password_file: pki/ec/client.p12.pass\n"
      "      cert: pki/ec/client.crt\n      key: pki/ec/client.key\n");
  const ConfigError* e = FindError(report, "backends[0].tls.pkcs12");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("not both"));
}

TEST_F(KeystoreConfigTest, EncryptedKeyLoadsWithKeyPasswordFile) {
  const ConfigReport report = Load(
      "      cert: pki/ec/client.fullchain.pem\n      key: pki/ec/client.enc.key\n"
      "      key_password_file: pki/ec/client.key.pass\n");
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  EXPECT_EQ(report.options.backends[0].tls.key_password_file, dir_ + "/pki/ec/client.key.pass");
}

TEST_F(KeystoreConfigTest, EncryptedKeyWithWrongPasswordIsAnErrorAtTheKey) {
  testing::WriteFile(dir_ + "/wrong.pass", "nope-nope\n");
  const ConfigReport report = Load(
      "      cert: pki/ec/client.fullchain.pem\n      key: pki/ec/client.enc.key\n"
      "      key_password_file: wrong.pass\n");
  const ConfigError* e = FindError(report, "backends[0].tls.key");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("wrong password"));
  EXPECT_THAT(AllErrors(report), ::testing::Not(HasSubstr("nope-nope")));
}

TEST_F(KeystoreConfigTest, EncryptedKeyWithoutPasswordSaysWhatToSet) {
  const ConfigReport report =
      Load("      cert: pki/ec/client.fullchain.pem\n      key: pki/ec/client.enc.key\n");
  const ConfigError* e = FindError(report, "backends[0].tls.key");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("key_password_file"));
}

TEST_F(KeystoreConfigTest, OcspSettingsIgnoredByTheModeAreWarnedAbout) {
  ConfigReport report = Load("      ocsp: {responder_url: \"http://127.0.0.1:1/\"}\n");
  ASSERT_TRUE(report.ok()) << AllErrors(report);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_THAT(report.warnings[0].message, HasSubstr("OCSP is OFF"));
  report = Load(
      "      ocsp: {mode: STAPLE_ONLY, responder_url: \"http://127.0.0.1:1/\"}\n");
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_THAT(report.warnings[0].message, HasSubstr("STAPLE_OR_QUERY"));
  report = Load("      ocsp: {mode: STAPLE_OR_QUERY, responder_url: \"http://127.0.0.1:1/\"}\n");
  EXPECT_TRUE(report.warnings.empty());
}

TEST_F(KeystoreConfigTest, BadSpkiPinIsAnErrorNamingIt) {
  const ConfigReport report = Load("      spki_pins: [\"abc\"]\n");
  const ConfigError* e = FindError(report, "backends[0].tls.spki_pins[0]");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("\"abc\""));
}

TEST_F(KeystoreConfigTest, BadPeerNamePatternIsAnErrorNamingThePosition) {
  const ConfigReport report = Load("      peer_name: \"CN=a, XX=b\"\n");
  const ConfigError* e = FindError(report, "backends[0].tls.peer_name");
  ASSERT_NE(e, nullptr) << AllErrors(report);
  EXPECT_THAT(e->message, HasSubstr("XX"));
  EXPECT_THAT(e->message, HasSubstr("at offset 6"));  // 0-based offset of "XX".
}

}  // namespace
}  // namespace tlsbroker
