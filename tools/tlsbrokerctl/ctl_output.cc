#include "tools/tlsbrokerctl/ctl_output.h"

#include <algorithm>

#include <google/protobuf/util/json_util.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace tlsbroker::ctl {
namespace {

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

const char* YesNo(bool b) { return b ? "yes" : "no"; }

// Whole seconds for ages above a minute, milliseconds below, so the column stays short.
std::string ShortDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  if (d >= absl::Minutes(1)) return absl::FormatDuration(absl::Trunc(d, absl::Seconds(1)));
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
}

std::string Date(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProto(t), absl::UTCTimeZone());
}

// Quotes a value that may hold spaces (DNs, failure messages) so summaries stay parseable.
std::string Quoted(const std::string& s) { return absl::StrCat("\"", absl::CEscape(s), "\""); }

}  // namespace

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], std::max<size_t>(row[i].size(), 1));
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string cell = row[i].empty() ? "-" : row[i];
      line += cell;
      if (i + 1 < row.size()) line.append(widths[i] - cell.size() + 2, ' ');
    }
    out += line;
    out += '\n';
  }
  return out;
}

std::string LeaseSummary(const v1::LeaseInfo& info) {
  std::string out = absl::StrCat(
      "backend=", info.backend(), " client_id=", info.client_id(),
      " socket_id=", info.socket_id(), " reused=", YesNo(info.reused()),
      " leases_served=", info.leases_served(),
      " wait=", ShortDuration(FromProto(info.wait())), " tls=", info.tls_version(),
      " cipher=", info.cipher(), " resumed=", YesNo(info.session_resumed()),
      " peer=", Quoted(info.peer().subject()));
  if (info.peer().has_not_after()) absl::StrAppend(&out, " not_after=", Date(info.peer().not_after()));
  if (!info.lease_id().empty()) absl::StrAppend(&out, " lease_id=", info.lease_id());
  return out;
}

std::string BackendsTable(const v1::ListBackendsResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ADDRESS", "STATE", "IDLE", "LEASED", "CONNECTING", "MAX", "WAITERS", "CREATED",
       "FULL_HS", "RESUMED_HS", "LEASES", "CONNECT_FAILURES", "LAST_FAILURE"}};
  for (const v1::BackendStatus& b : response.backends()) {
    // With `addresses`, all of them in the order they are tried.
    const std::string address =
        b.addresses_size() > 1 ? absl::StrJoin(b.addresses(), ",") : b.address();
    rows.push_back({b.name(), address, b.draining() ? "draining" : "serving",
                    absl::StrCat(b.idle()), absl::StrCat(b.leased()),
                    absl::StrCat(b.connecting()), absl::StrCat(b.max_sockets()),
                    absl::StrCat(b.waiters()), absl::StrCat(b.sockets_created()),
                    absl::StrCat(b.handshakes_full()), absl::StrCat(b.handshakes_resumed()),
                    absl::StrCat(b.leases_granted()), absl::StrCat(b.connect_failures()),
                    b.last_failure().empty() ? "" : Quoted(b.last_failure())});
  }
  std::string out = FormatTable(rows);
  if (response.broker_draining()) {
    out += "broker: draining (whole broker; undo with `tlsbrokerctl resume --all`)\n";
  }
  return out;
}

namespace {

// "idle" for SOCKET_STATE_IDLE: the table is for people; --json keeps the enum's name.
std::string StateWord(v1::SocketState state) {
  std::string name = v1::SocketState_Name(state);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "SOCKET_STATE_"));
}

}  // namespace

std::string SocketsTable(const v1::ListSocketsResponse& response, absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"CLIENT_ID", "SOCKET", "SLOT", "STATE", "AGE", "LEASES", "SENT", "RECEIVED", "TLS",
       "CIPHER", "RESUMED", "PEER_NOT_AFTER", "LEASE_ID", "HOLDER", "LEASE_STARTED", "PEER"}};
  for (const v1::SocketStatus& s : response.sockets()) {
    const bool has_socket = s.socket_id() != 0;
    rows.push_back(
        {s.client_id(), has_socket ? absl::StrCat(s.socket_id()) : "", absl::StrCat(s.slot()),
         StateWord(s.state()), s.has_created_at() ? ShortDuration(now - FromProto(s.created_at())) : "",
         absl::StrCat(s.leases_served()), absl::StrCat(s.bytes_sent()),
         absl::StrCat(s.bytes_received()), s.tls_version(), s.cipher(),
         has_socket ? YesNo(s.session_resumed()) : "", Date(s.peer().not_after()), s.lease_id(),
         s.holder(),
         Date(s.lease_started_at()),
         s.peer().subject().empty() ? "" : Quoted(s.peer().subject())});
  }
  return FormatTable(rows);
}

absl::StatusOr<std::string> MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Scripts should not have to know that proto3 leaves out zeros and false.
  options.always_print_primitive_fields = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print JSON: ", status.ToString()));
  }
  return out;
}

absl::StatusOr<std::string> CallResponseJson(const v1::CallResponse& response) {
  absl::StatusOr<std::string> lease = MessageJson(response.lease());
  if (!lease.ok()) return lease.status();
  // Base64 has no characters that need escaping in a JSON string.
  return absl::StrCat("{\"response_base64\":\"", absl::Base64Escape(response.response()),
                      "\",\"lease\":", *lease, "}");
}

}  // namespace tlsbroker::ctl
