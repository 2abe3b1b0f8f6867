#!/usr/bin/env bash
# ctest tlsbroker_load_*: tlsbroker-load against the real binaries. The fixture's `start` runs
# the demo with tiny counts and --keep-running (backends + broker stay up); each case then runs
# the load generator and checks its JSON report; `stop` ends what the demo left running.
#   load_test.sh CASE SOURCE_DIR WORK_DIR TLSBROKER_BIN TLSB_BACKEND_BIN TLSB_LOAD_BIN
# CASE: start | stop | count_bounded | wrong_backend | wrong_prefix | lease_exchanges | bulk_echo
# DEMO_PKI (optional): an existing test PKI.
set -uo pipefail
case_name=$1 src=$2 work=$3 load=$6
fail() { echo "load_test($case_name): $*" >&2; exit 1; }
# shellcheck source=../demo/demo_fixture.sh
source "$src/tests/demo/demo_fixture.sh"

if [ "$case_name" = start ]; then
  rm -rf "$work" && mkdir -p "$work"
  demo_fixture_start "$src" "$work" "$4" "$5" "$6"
  exit 0
fi
demo_fixture_load "$work"
if [ "$case_name" = stop ]; then
  demo_fixture_stop
  exit 0
fi
creds=(--target "$TARGET" --ca "$CA" --cert "$CERT" --key "$KEY")

# json FILE EXPR: evaluates a Python expression over the report `r`.
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
# expect FILE EXPR VALUE
expect() {
  local got
  got=$(json "$1" "$2")
  [ "$got" = "$3" ] || { cat "$1"; fail "$2 = $got, expected $3"; }
}

out="$work/$case_name.json"
rc=0
case "$case_name" in
  count_bounded)
    # A count-bounded run makes exactly that many calls, all verified, with random sizes.
    timeout 60 "$load" "${creds[@]}" --backend demo --count 300 --callers 3 --channels 2 \
      --size-min 1 --size-max 4000 --metrics-url "$METRICS_URL" --json >"$out" || rc=$?
    [ "$rc" = 0 ] || { cat "$out"; fail "exit $rc, expected 0"; }
    expect "$out" 'r["operations"]' 300
    expect "$out" 'r["ok"]' 300
    expect "$out" 'r["corrupt"]' 0
    expect "$out" 'r["errors"]' 0
    expect "$out" 'sum(r["client_ids"].values())' 300
    expect "$out" 'r["handshakes"] is not None and r["handshakes"]["failed"] == 0' True
    ;;
  wrong_backend)
    # Calls to a backend the broker does not know fail with NOT_FOUND, counted, and exit 1.
    timeout 60 "$load" "${creds[@]}" --backend no-such-backend --count 7 --json >"$out" || rc=$?
    [ "$rc" = 1 ] || { cat "$out"; fail "exit $rc, expected 1"; }
    expect "$out" 'r["errors_by_code"].get("NOT_FOUND")' 7
    expect "$out" 'r["ok"]' 0
    ;;
  lease_exchanges)
    # Lease mode: every exchange of every lease verified on one socket per lease.
    timeout 60 "$load" "${creds[@]}" --backend demo --mode lease --count 12 --callers 3 \
      --exchanges-per-lease 5 --json >"$out" || rc=$?
    [ "$rc" = 0 ] || { cat "$out"; fail "exit $rc, expected 0"; }
    expect "$out" 'r["ok"]' 12
    expect "$out" 'r["exchanges"]' 60
    expect "$out" 'r["corrupt"]' 0
    ;;
  bulk_echo)
    # Bulk mode: every byte of each stream comes back in order through the raw echo backend.
    timeout 60 "$load" "${creds[@]}" --backend demo-echo --mode bulk --count 2 --callers 2 \
      --bulk-bytes 1Mi --json >"$out" || rc=$?
    [ "$rc" = 0 ] || { cat "$out"; fail "exit $rc, expected 0"; }
    expect "$out" 'r["ok"]' 2
    expect "$out" 'r["bulk_bytes"]' 2097152
    ;;
  wrong_prefix)
    # Responses that are not the expected echo are counted as corrupt, and the exit code is 1.
    timeout 60 "$load" "${creds[@]}" --backend demo --count 5 --callers 1 \
      --response-prefix "xx:" --json >"$out" || rc=$?
    [ "$rc" = 1 ] || { cat "$out"; fail "exit $rc, expected 1"; }
    expect "$out" 'r["corrupt"]' 5
    expect "$out" 'r["ok"]' 0
    ;;
  *) fail "unknown case" ;;
esac
echo "load_test($case_name): OK"
