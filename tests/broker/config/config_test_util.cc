#include "tests/broker/config/config_test_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace tlsbroker::testing {
namespace {

bool HasPki(const std::string& dir) {
  return !dir.empty() && std::filesystem::exists(dir + "/ec/ca-chain.pem") &&
         std::filesystem::exists(dir + "/rsa/ca-chain.pem");
}

std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tlsb-config-test.XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    std::cerr << "cannot create a temporary directory\n";
    std::abort();
  }
  return pattern;
}

}  // namespace

const std::string& ConfigTestPkiDir() {
  static const std::string* const dir = [] {
    const char* env = std::getenv("TLSB_TEST_PKI_DIR");
    if (env != nullptr && HasPki(env)) return new std::string(env);
    // Run by hand, outside ctest: make a PKI of our own with the project's script.
    const char* source = std::getenv("TLSB_SOURCE_DIR");
    const std::string script = absl::StrCat(source != nullptr ? source : TLSB_SOURCE_DIR_DEFAULT,
                                            "/tests/support/make_test_pki.sh");
    const std::string out = MakeTempDir() + "/pki";
    const std::string command = absl::StrCat("bash '", script, "' '", out, "' >&2");
    if (std::system(command.c_str()) != 0 || !HasPki(out)) {
      std::cerr << "no test PKI: set TLSB_TEST_PKI_DIR or run " << script << "\n";
      std::abort();
    }
    return new std::string(out);
  }();
  return *dir;
}

std::string MakeDirWithPki() {
  const std::string dir = MakeTempDir();
  std::filesystem::create_directory_symlink(ConfigTestPkiDir(), dir + "/pki");
  return dir;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

const ConfigError* FindError(const ConfigReport& report, const std::string& path) {
  for (const ConfigError& e : report.errors) {
    if (e.field_path == path) return &e;
  }
  return nullptr;
}

std::string AllErrors(const ConfigReport& report) { return report.FormatErrors("config"); }

}  // namespace tlsbroker::testing
