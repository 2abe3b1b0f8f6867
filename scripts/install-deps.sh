#!/usr/bin/env bash
# Installs the Debian packages tlsbroker needs to build and test. Idempotent: it asks apt only for
# what is missing, so a machine that has everything runs no apt command at all.
set -euo pipefail

# What building the broker and running `make demo` needs (the demo's test backend lives with
# the tests, so GoogleTest too; Google Benchmark because the default configuration finds it).
packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev libasio-dev
  python3
)
# INSTALL_DEPS_SET=demo (scripts/demo.sh sets it): only those, so a first `make demo` on a fresh
# machine does not wait for the test tools. Otherwise also what the test suite runs:
#   clang, libclang-rt  the fuzz build (libFuzzer)
#   python3-grpc*       the Python client tests; prometheus: promtool for the alert rules
#   buildah, debootstrap  the container image test builds the real Dockerfile without a Docker
#                       engine, on a base image bootstrapped from the Debian mirror
if [ "${INSTALL_DEPS_SET:-all}" != demo ]; then
  packages+=(
    clang libclang-rt-14-dev
    python3-grpcio python3-grpc-tools prometheus
    buildah debootstrap
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The chart and manifest checks fetch pinned test tools with npm, and the clients tests run the
# Node.js example (clients/node) with its pinned npm packages. Use the machine's Node.js when it
# has one; otherwise Debian's.
if [ "${INSTALL_DEPS_SET:-all}" != demo ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
