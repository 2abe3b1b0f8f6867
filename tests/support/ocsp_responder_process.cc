#include "tests/support/ocsp_responder_process.h"

#include <stdlib.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "tests/support/test_pki.h"

namespace tlsbroker::testutil {
namespace {

constexpr char kListening[] = "LISTENING 127.0.0.1:";

// Like the test PKI script: from $TLSB_SOURCE_DIR (set by ctest), else this source tree.
std::string HelperPath() {
  const char* source_dir = getenv("TLSB_SOURCE_DIR");
  if (source_dir != nullptr && *source_dir != '\0') {
    std::string path = absl::StrCat(source_dir, "/tests/support/ocsp_responder.py");
    if (access(path.c_str(), R_OK) == 0) return path;
  }
  return absl::StrCat(TLSB_SUPPORT_SOURCE_DIR, "/ocsp_responder.py");
}

}  // namespace

absl::StatusOr<std::unique_ptr<OcspResponderProcess>> OcspResponderProcess::Start(
    const std::string& index) {
  // Debian's interpreter by path, as the other Python tests: a python3 found first on PATH
  // may be a launcher that does not pass SIGTERM on, leaving the responder (and its work
  // directory) behind when the test stops it.
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(
      {"/usr/bin/python3", HelperPath(), "--index", index, "--ca", PkiPath("ec", "int.crt"), "--rsigner",
       PkiPath("ec", "ocsp.crt"), "--rkey", PkiPath("ec", "ocsp.key"), "--rother",
       PkiPath("ec", "int.crt")});
  if (!process.ok()) return process.status();
  absl::Status listening = (*process)->WaitForLog(kListening, absl::Seconds(20));
  std::string log = (*process)->ReadLog();
  if (!listening.ok()) {
    return absl::UnavailableError(absl::StrCat("OCSP responder did not start: ",
                                               listening.message(), "\n", log));
  }
  absl::string_view rest = log;
  rest.remove_prefix(log.find(kListening) + sizeof(kListening) - 1);
  int port = 0;
  if (!absl::SimpleAtoi(rest.substr(0, rest.find('\n')), &port)) {
    return absl::InternalError(absl::StrCat("OCSP responder printed no port:\n", log));
  }
  return std::unique_ptr<OcspResponderProcess>(
      new OcspResponderProcess(*std::move(process), port));
}

std::string OcspResponderProcess::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/");
}

int OcspResponderProcess::requests() const {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(process_->ReadLog(), '\n')) {
    n += absl::StartsWith(line, "REQUEST ");
  }
  return n;
}

std::string OcspResponderProcess::log() const { return process_->ReadLog(); }

}  // namespace tlsbroker::testutil
