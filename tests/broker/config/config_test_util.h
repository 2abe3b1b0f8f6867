#ifndef TESTS_BROKER_CONFIG_CONFIG_TEST_UTIL_H_
#define TESTS_BROKER_CONFIG_CONFIG_TEST_UTIL_H_

// Helpers shared by the config tests: a scratch directory with the test PKI linked in as
// "pki/" (so configs use the same relative paths as deploy/examples), and error lookup.

#include <string>

#include "broker/config/load_options.h"

namespace tlsbroker::testing {

// The test PKI (holding ec/ and rsa/): $TLSB_TEST_PKI_DIR when it holds a PKI, else one made
// once per process with tests/support/make_test_pki.sh. Aborts if none can be had.
const std::string& ConfigTestPkiDir();

// A fresh directory containing a "pki" symlink to ConfigTestPkiDir().
std::string MakeDirWithPki();

// Writes `contents` to `path`.
void WriteFile(const std::string& path, const std::string& contents);

// The first error whose field path is `path`, or nullptr.
const ConfigError* FindError(const ConfigReport& report, const std::string& path);

// All errors, one per line, for failure messages.
std::string AllErrors(const ConfigReport& report);

}  // namespace tlsbroker::testing

#endif  // TESTS_BROKER_CONFIG_CONFIG_TEST_UTIL_H_
