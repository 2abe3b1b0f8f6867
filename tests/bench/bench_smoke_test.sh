#!/usr/bin/env bash
# Runs scripts/bench.sh --smoke (binaries and directories from the environment set by CMake) and
# checks that the report has a row for every mode and the ratio lines. No performance thresholds.
set -euo pipefail
root=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! bash "$root/scripts/bench.sh" --smoke >"$out" 2>&1; then
  cat "$out"
  echo "bench_smoke_test: scripts/bench.sh --smoke failed" >&2
  exit 1
fi
cat "$out"
for row in "(a) direct, full handshake" "(b) direct, resumed session" "(c) direct, persistent" \
           "(d) bare gRPC unary echo" "(d1) bare gRPC echo answering from a loop thread" \
           "(d2) gRPC forwarding on its own thread" "(e) tlsbroker Call" "(f) tlsbroker Lease" \
           "(c) bulk" "(f) bulk" "| (e)/(a) |" "| (e)/(d) |" \
           "| (e)/(d2) broker per Call vs the proxy floor |" "| (f)/(c) bulk |" \
           "p50(e) − p50(c) − p50(d)" "idle pooled sockets"; do
  if ! grep -qF -- "$row" "$out"; then
    echo "bench_smoke_test: the report has no '$row'" >&2
    exit 1
  fi
done
echo "bench_smoke_test: OK"
