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
CMAKE_EXTRA="-DTLSB_WERROR=ON ${CMAKE_EXTRA:-}" bash scripts/build.sh "$BUILD_DIR"
args=(--test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)")
if [ -n "${TEST_FILTER:-}" ]; then
  args+=(-R "$TEST_FILTER|make_test_pki")
fi
if [ -n "${TEST_LABEL:-}" ]; then
  args+=(-L "$TEST_LABEL")
fi
if [ -n "${TEST_EXCLUDE_LABEL:-}" ]; then
  args+=(-LE "$TEST_EXCLUDE_LABEL")
fi
ctest "${args[@]}"
