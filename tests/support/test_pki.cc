#include "tests/support/test_pki.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/support/subprocess.h"

namespace tlsbroker::testutil {
namespace {

std::string ScriptPath() {
  const char* source_dir = getenv("TLSB_SOURCE_DIR");
  if (source_dir != nullptr && *source_dir != '\0') {
    std::string path = absl::StrCat(source_dir, "/tests/support/make_test_pki.sh");
    if (access(path.c_str(), R_OK) == 0) return path;
  }
  return absl::StrCat(TLSB_SUPPORT_SOURCE_DIR, "/make_test_pki.sh");
}

[[noreturn]] void Die(const std::string& message) {
  fprintf(stderr, "test PKI: %s\n", message.c_str());
  abort();
}

// Runs the generator into `dir`. It returns at once if an up-to-date PKI is already there
// (the usual case under ctest), and copes with a concurrent run into the same directory.
void EnsurePki(const std::string& dir) {
  absl::StatusOr<CommandResult> result =
      RunCommand({"bash", ScriptPath(), dir}, "", absl::Seconds(120));
  if (!result.ok()) Die(std::string(result.status().message()));
  if (result->exit_code != 0) {
    Die(absl::StrCat("make_test_pki.sh exited with ", result->exit_code, ":\n", result->output));
  }
}

std::string FindOrMakePki() {
  const char* env = getenv("TLSB_TEST_PKI_DIR");
  if (env != nullptr && *env != '\0') {
    EnsurePki(env);
    return env;
  }
  std::string parent = MakeTempDir("tlsb-test-pki");
  if (parent.empty()) Die("cannot create a temporary directory");
  std::string dir = absl::StrCat(parent, "/pki");
  EnsurePki(dir);
  // Generated for this process only: remove it at exit. Only plain files are in there.
  static std::string* to_remove = new std::string(parent);
  atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(*to_remove, ignored);
  });
  return dir;
}

}  // namespace

const std::string& TestPkiDir() {
  static const std::string* const dir = new std::string(FindOrMakePki());
  return *dir;
}

std::string PkiPath(absl::string_view alg, absl::string_view file) {
  return absl::StrCat(TestPkiDir(), "/", alg, "/", file);
}

}  // namespace tlsbroker::testutil
