#ifndef TESTS_SUPPORT_TEST_PKI_H_
#define TESTS_SUPPORT_TEST_PKI_H_

// Where the tests' certificates live. The PKI is made by tests/support/make_test_pki.sh; see
// the README.txt it writes for the list of files.

#include <string>

#include "absl/strings/string_view.h"

namespace tlsbroker::testutil {

// The test PKI directory (holding ec/ and rsa/). Taken from $TLSB_TEST_PKI_DIR, which ctest
// sets to the PKI its make_test_pki fixture generates; if that is unset (a test binary run by
// hand), a PKI is generated once per process into a temporary directory, using the script
// found under $TLSB_SOURCE_DIR or else the source tree this library was built from. A missing
// PKI is generated on the spot. Aborts with a message if no PKI can be had: tests without
// their certificates cannot run. Thread-safe.
const std::string& TestPkiDir();

// A file of the test PKI: PkiPath("ec", "server.crt"), PkiPath("rsa", "wrongca/root.crt").
std::string PkiPath(absl::string_view alg, absl::string_view file);

}  // namespace tlsbroker::testutil

#endif  // TESTS_SUPPORT_TEST_PKI_H_
