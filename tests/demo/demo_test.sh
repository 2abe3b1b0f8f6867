#!/usr/bin/env bash
# ctest demo_runs_end_to_end: runs scripts/demo.sh with small counts on the binaries of this
# build and checks its report: every call made and verified, no errors, and the backend saw at
# most max_sockets TLS handshakes for all the calls.
#   demo_test.sh SOURCE_DIR WORK_DIR TLSBROKER_BIN TLSB_BACKEND_BIN TLSB_LOAD_BIN
set -uo pipefail
src=$1 work=$2
rm -rf "$work/run" && mkdir -p "$work"
out=$(SKIP_BUILD=1 DEMO_CALLS=200 DEMO_CALLERS=4 DEMO_DIR="$work/run" BUILD_DIR="$work" \
      TLSBROKER_BIN=$3 TLSB_BACKEND_BIN=$4 TLSB_LOAD_BIN=$5 timeout 60 bash "$src/scripts/demo.sh" 2>&1)
rc=$?
echo "$out"
fail() { echo "demo_test: $*" >&2; exit 1; }
[ "$rc" = 0 ] || fail "demo.sh exited $rc"
grep -Eq '^  calls made +200 from 4 callers' <<<"$out" || fail "report does not show 200 calls"
grep -Eq '^  errors +0$' <<<"$out" || fail "report shows errors"
grep -Eq '^  corrupt responses +0$' <<<"$out" || fail "report shows corrupt responses"
line=$(grep -E '^  backend handshakes' <<<"$out") || fail "no backend handshake line"
full=$(sed -E 's/.*handshakes +([0-9]+) full, ([0-9]+) resumed.*/\1/' <<<"$line")
resumed=$(sed -E 's/.*handshakes +([0-9]+) full, ([0-9]+) resumed.*/\2/' <<<"$line")
[ $((full + resumed)) -ge 1 ] && [ $((full + resumed)) -le 8 ] ||
  fail "backend handshakes $full full + $resumed resumed, expected 1..8 (max_sockets)"
grep -Eq 'metrics +http://127\.0\.0\.1:[0-9]+/metrics' <<<"$out" || fail "no /metrics URL"
echo "demo_test: OK ($full full + $resumed resumed handshakes for 200 calls)"
