#!/usr/bin/env bash
# Configures and builds tlsbroker into BUILD_DIR (default: build), installing missing packages
# first. Extra CMake arguments come from CMAKE_EXTRA; BUILD_TARGET limits the build to one target.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
bash scripts/install-deps.sh
jobs=$(nproc)
# Rebuilds (and builds of several checkouts) reuse compiled objects when ccache is installed;
# CCACHE_BASEDIR makes the cache hits independent of where the checkout lives.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" ${CMAKE_EXTRA:-} >/dev/null
# BUILD_TARGET: build only these targets (e.g. "tlsb_tests_broker tlsb_tests_fuzz"), default
# everything.
if [ -n "${BUILD_TARGET:-}" ]; then
  # shellcheck disable=SC2086
  cmake --build "$BUILD_DIR" -j "$jobs" --target $BUILD_TARGET
else
  cmake --build "$BUILD_DIR" -j "$jobs"
fi
