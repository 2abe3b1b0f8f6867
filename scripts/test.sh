#!/usr/bin/env bash
# Builds (installing missing packages) and runs the test suite with ctest.
#   BUILD_DIR    build directory (default: build)
#   CMAKE_EXTRA  extra CMake arguments (sanitizer options)
#   TEST_FILTER  ctest -R regex (default: all tests)
#   TEST_LABEL   ctest -L label: broker, services, support, ... (default: all)
#   TEST_EXCLUDE_LABEL  ctest -LE regex: labels to skip (default: none)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
rm -f "$BUILD_DIR/ctest-junit.xml"  # no count from an earlier run if this one fails to build
CMAKE_EXTRA="-DTLSB_WERROR=ON ${CMAKE_EXTRA:-}" bash scripts/build.sh "$BUILD_DIR"
# The JUnit file is what scripts/ctest-counts.py counts (ctest's own summary counts fixture
# steps as tests and skips as passes).
args=(--test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
  --output-junit "$(realpath -m "$BUILD_DIR")/ctest-junit.xml")
if [ -n "${TEST_FILTER:-}" ]; then
  args+=(-R "$TEST_FILTER|make_test_pki")
fi
if [ -n "${TEST_LABEL:-}" ]; then
  args+=(-L "$TEST_LABEL")
fi
if [ -n "${TEST_EXCLUDE_LABEL:-}" ]; then
  args+=(-LE "$TEST_EXCLUDE_LABEL")
fi
rc=0
ctest "${args[@]}" || rc=$?
# The honest count of this run, e.g. "tests: 440 passed, 0 failed, 2 skipped", with each skip
# and its reason. A run that stopped before writing its JUnit file has failed anyway.
if [ -f "$BUILD_DIR/ctest-junit.xml" ]; then
  python3 scripts/ctest-counts.py stage "${TEST_STAGE:-tests}" "$BUILD_DIR"
fi
exit $rc
