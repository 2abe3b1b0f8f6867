// tlsbrokerctl's option parsing, framing helper and output formatting, without a broker.

#include <map>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/tlsbrokerctl/ctl_commands.h"
#include "tools/tlsbrokerctl/ctl_options.h"
#include "tools/tlsbrokerctl/ctl_output.h"

namespace tlsbroker::ctl {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<CtlOptions> Parse(const std::vector<std::string>& args,
                                 std::map<std::string, std::string> env = {}) {
  return ParseArgs(args, [env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// Options may come before and after the command; the backend is the positional argument.
TEST(CtlOptionsTest, ParsesCallWithOptionsAnywhere) {
  auto o = Parse({"--target", "broker:1234", "call", "ims", "--frame-text=hi", "--client-id",
                  "TLSB0002", "--timeout", "500ms", "--json"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->command, Command::kCall);
  EXPECT_EQ(o->backend, "ims");
  EXPECT_EQ(o->connection.target, "broker:1234");
  EXPECT_EQ(o->payload_source, PayloadSource::kFrameText);
  EXPECT_EQ(o->payload_arg, "hi");
  EXPECT_EQ(o->client_id, "TLSB0002");
  EXPECT_EQ(o->timeout, absl::Milliseconds(500));
  EXPECT_TRUE(o->timeout_set);
  EXPECT_TRUE(o->json);
}

// The target comes from --target, else $TLSBROKER_TARGET, else the documented default.
TEST(CtlOptionsTest, TargetDefaultsToEnvironmentThenBuiltIn) {
  EXPECT_EQ(Parse({"backends"})->connection.target, kDefaultTarget);
  EXPECT_EQ(Parse({"backends"}, {{"TLSBROKER_TARGET", "unix:/run/b.sock"}})->connection.target,
            "unix:/run/b.sock");
  EXPECT_EQ(Parse({"backends", "--target", "h:1"}, {{"TLSBROKER_TARGET", "x:2"}})
                ->connection.target,
            "h:1");
}

// Every kind of mistake is a usage error with a message naming it.
TEST(CtlOptionsTest, MistakesAreUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "missing command"},
      {{"frobnicate"}, "unknown command"},
      {{"call", "b"}, "needs one of --data, --file, --frame-text"},
      {{"call", "b", "--data", "x", "--frame-text", "y"}, "exactly one"},
      {{"call"}, "needs a BACKEND"},
      {{"backends", "extra"}, "unexpected argument"},
      {{"backends", "--data", "x"}, "does not apply to backends"},
      {{"backends", "--bogus"}, "unknown option --bogus"},
      {{"backends", "--timeout"}, "needs a value"},
      {{"backends", "--timeout", "soon"}, "bad duration"},
      {{"backends", "--json=yes"}, "takes no value"},
      {{"backends", "--cert", "c.pem"}, "--cert and --key go together"},
      {{"backends", "--insecure-plaintext", "--target", "10.0.0.1:7443"}, "loopback"},
      // No default to the whole broker: a forgotten argument must not drain the pod.
      {{"drain"}, "needs a BACKEND argument, or --all"},
      {{"resume"}, "needs a BACKEND argument, or --all"},
      {{"drain", "b", "--all"}, "not both"},
      {{"resume", "--all", "b"}, "not both"},
      {{"sockets", "b", "--all"}, "--all does not apply to sockets"},
  };
  for (const Case& c : cases) {
    auto o = Parse(c.args);
    ASSERT_FALSE(o.ok()) << ::testing::PrintToString(c.args);
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(o.status().message()), HasSubstr(c.message))
        << ::testing::PrintToString(c.args);
  }
}

// drain and resume take one backend, or --all for the whole broker.
TEST(CtlOptionsTest, DrainAndResumeTakeBackendOrAll) {
  auto one = Parse({"resume", "ims"});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->command, Command::kResume);
  EXPECT_EQ(one->backend, "ims");
  EXPECT_FALSE(one->all);
  auto all = Parse({"--all", "drain"});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->command, Command::kDrain);
  EXPECT_EQ(all->backend, "");
  EXPECT_TRUE(all->all);
  EXPECT_THAT(UsageText(), HasSubstr("resume (BACKEND | --all)"));
}

// --version needs no command; --help still wins over it.
TEST(CtlOptionsTest, VersionNeedsNoCommandAndHelpWinsOverIt) {
  auto o = Parse({"--version"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->command, Command::kVersion);
  EXPECT_EQ(Parse({"backends", "--version"})->command, Command::kVersion);
  EXPECT_EQ(Parse({"--version", "--help"})->command, Command::kHelp);
  EXPECT_FALSE(Parse({"--version=1"}).ok());
}

// --help wins over everything else on the line, even a mistake.
TEST(CtlOptionsTest, HelpWinsOverOtherArguments) {
  auto o = Parse({"call", "--help"});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->command, Command::kHelp);
  EXPECT_EQ(Parse({"-h"})->command, Command::kHelp);
}

// The usage text documents every exit code scripts may rely on.
TEST(CtlOptionsTest, UsageDocumentsExitCodesAndFraming) {
  const std::string usage = UsageText();
  for (const char* line : {"0  success", "2  usage error", "3  broker unreachable",
                           "4  PERMISSION_DENIED or UNAUTHENTICATED", "5  NOT_FOUND",
                           "6  DEADLINE_EXCEEDED", "7  any other RPC error"}) {
    EXPECT_THAT(usage, HasSubstr(line));
  }
  EXPECT_THAT(usage, HasSubstr("4-byte big-endian length field counting its own"));
}

// Plaintext is allowed only to loopback addresses and unix sockets.
TEST(CtlOptionsTest, PlaintextOnlyToLoopbackOrUnix) {
  for (const char* ok : {"127.0.0.1:7443", "127.1.2.3:1", "localhost:7443", "[::1]:7443",
                         "unix:/run/tlsbroker.sock", "dns:///localhost:1", "ipv4:127.0.0.1:9"}) {
    EXPECT_TRUE(CheckPlaintextTarget(ok).ok()) << ok;
  }
  for (const char* bad : {"10.0.0.1:7443", "broker.example.org:7443", "[2001:db8::1]:7443",
                          "0.0.0.0:7443"}) {
    EXPECT_FALSE(CheckPlaintextTarget(bad).ok()) << bad;
  }
}

// --frame-text's length field is 4 bytes big-endian and counts itself.
TEST(CtlOptionsTest, FrameTextPrefixesBigEndianLengthIncludingItself) {
  EXPECT_EQ(FrameText("hello"), std::string("\0\0\0\x09hello", 9));
  EXPECT_EQ(FrameText(""), std::string("\0\0\0\x04", 4));
  EXPECT_EQ(FrameText(std::string(300, 'x')).substr(0, 4), std::string("\0\0\x01\x30", 4));
}

// `backends` shows every address of a backend with several, in order, and a whole-broker
// drain on a line of its own.
TEST(CtlOutputTest, BackendsTableShowsAddressesAndBrokerDrain) {
  v1::ListBackendsResponse response;
  v1::BackendStatus* b = response.add_backends();
  b->set_name("ims");
  b->set_address("ims-a:9999");
  b->add_addresses("ims-a:9999");
  b->add_addresses("ims-b:9999");
  b->set_draining(true);
  std::string table = BackendsTable(response);
  EXPECT_THAT(table, HasSubstr("ims-a:9999,ims-b:9999"));
  EXPECT_THAT(table, HasSubstr("draining"));
  EXPECT_THAT(table, ::testing::Not(HasSubstr("broker: draining")));
  response.set_broker_draining(true);
  EXPECT_THAT(BackendsTable(response), HasSubstr("broker: draining"));
}

// Durations take Go-style units or plain seconds.
TEST(CtlOptionsTest, DurationsTakeUnitsOrSeconds) {
  EXPECT_EQ(*ParseDurationFlag("250ms"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseDurationFlag("1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDurationFlag("2.5"), absl::Milliseconds(2500));
  EXPECT_FALSE(ParseDurationFlag("-1s").ok());
  EXPECT_FALSE(ParseDurationFlag("inf").ok());
}

// Each failed RPC's code maps to its documented exit code.
TEST(CtlOptionsTest, StatusCodesMapToDocumentedExitCodes) {
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::OK), 0);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAVAILABLE), 3);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::PERMISSION_DENIED), 4);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAUTHENTICATED), 4);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::NOT_FOUND), 5);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::DEADLINE_EXCEEDED), 6);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::ABORTED), 7);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::FAILED_PRECONDITION), 7);
}

// Tables align columns and show empty cells as "-".
TEST(CtlOutputTest, TableAlignsColumnsAndMarksEmptyCells) {
  EXPECT_EQ(FormatTable({{"NAME", "N", "LAST"}, {"framed", "12", ""}, {"e", "3", "x y"}}),
            "NAME    N   LAST\n"
            "framed  12  -\n"
            "e       3   x y\n");
}

// Call JSON carries the response as base64 and the lease with its zero/false fields.
TEST(CtlOutputTest, CallResponseJsonIsValidAndComplete) {
  v1::CallResponse response;
  response.set_response(std::string("\0\0\0\x06hi", 6));
  response.mutable_lease()->set_client_id("TLSB0001");
  response.mutable_lease()->set_socket_id(7);
  auto json = CallResponseJson(response);
  ASSERT_TRUE(json.ok()) << json.status();
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok()) << *json;
  EXPECT_EQ(parsed.fields().at("response_base64").string_value(), "AAAABmhp");
  const auto& lease = parsed.fields().at("lease").struct_value().fields();
  EXPECT_EQ(lease.at("client_id").string_value(), "TLSB0001");
  EXPECT_EQ(lease.at("socket_id").string_value(), "7");
  EXPECT_FALSE(lease.at("reused").bool_value());
  EXPECT_TRUE(lease.contains("reused"));
}

// The lease summary names the socket and quotes the peer's DN.
TEST(CtlOutputTest, LeaseSummaryNamesSocketAndPeer) {
  v1::LeaseInfo info;
  info.set_backend("framed");
  info.set_client_id("TLSB0003");
  info.set_socket_id(12);
  info.set_reused(true);
  info.mutable_peer()->set_subject("CN=QM2.backend,O=Example");
  const std::string s = LeaseSummary(info);
  EXPECT_THAT(s, HasSubstr("backend=framed client_id=TLSB0003 socket_id=12 reused=yes"));
  EXPECT_THAT(s, HasSubstr("peer=\"CN=QM2.backend,O=Example\""));
}

}  // namespace
}  // namespace tlsbroker::ctl
