#!/usr/bin/env bash
# The soak (`make soak`): the real tlsbroker for a bounded time under steady load while its
# backend is killed and restarted, its CRL re-issued, its client credentials re-written and its
# config reloaded (SIGHUP and the admin Reload RPC), sampling RSS, open fds, pool sockets,
# leases and failures every second. Prints the series and fails, naming the metric, if any of
# them grows after the warm-up, if the load saw a wrong answer or a failure the restarts do not
# explain, or if a lease outlives the load. The work is done by tools/soak/soak.py; this script
# builds, makes the test PKI and passes the binaries. Everything listens on 127.0.0.1 on ports
# chosen at run time.
#
#   scripts/soak.sh
#
#   SOAK_SECONDS   how long to soak (default 180)
#   SOAK_DIR       working directory for the PKI copy, config, logs (default: BUILD_DIR/soak)
#   SOAK_PKI       an existing test PKI (made by tests/support/make_test_pki.sh; default:
#                  BUILD_DIR/test-pki, made if missing)
#   SOAK_ARGS      more options for tools/soak/soak.py (see its --help: fault intervals and
#                  the allowed rise of each series)
#   SOAK_NO_BLEED_EXCHANGES  if set, afterwards run the randomized no-bleed test
#                  (NoBleedTest in tests/faults) with this many exchanges (ctest runs 100,000)
#   BUILD_DIR      build directory (default: build)
#   SKIP_BUILD=1   do not install packages or build (the binaries must exist)
#   TLSBROKER_BIN, TLSB_BACKEND_BIN, TLSB_LOAD_BIN, TLSBROKERCTL_BIN  binaries (default: under
#                  BUILD_DIR)
#
# Exit code 0 when the soak (and the no-bleed test, if asked for) ran clean, 1 when a check
# failed, 2 when it could not start.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "soak: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

BUILD_DIR=${BUILD_DIR:-build}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== installing missing packages and building into $BUILD_DIR"
  bash scripts/build.sh "$BUILD_DIR"
fi
broker_bin=${TLSBROKER_BIN:-$BUILD_DIR/services/tlsbroker}
backend_bin=${TLSB_BACKEND_BIN:-$BUILD_DIR/tests/support/tlsb-test-backend}
load_bin=${TLSB_LOAD_BIN:-$BUILD_DIR/tools/load/tlsbroker-load}
ctl_bin=${TLSBROKERCTL_BIN:-$BUILD_DIR/tools/tlsbrokerctl/tlsbrokerctl}
for bin in "$broker_bin" "$backend_bin" "$load_bin" "$ctl_bin"; do
  if [ ! -x "$bin" ]; then
    echo "soak: $bin is missing (build first, or unset SKIP_BUILD)" >&2
    exit 2
  fi
done

pki=${SOAK_PKI:-$BUILD_DIR/test-pki}
bash tests/support/make_test_pki.sh "$pki"

# No tools/soak/__pycache__ in the source tree (the soak runs from ctest too), for soak.py and
# any Python it starts.
export PYTHONDONTWRITEBYTECODE=1
# shellcheck disable=SC2086  # SOAK_ARGS is a list of options
python3 tools/soak/soak.py \
  --broker-bin "$broker_bin" --backend-bin "$backend_bin" --load-bin "$load_bin" \
  --ctl-bin "$ctl_bin" --pki "$pki/ec" --work "${SOAK_DIR:-$BUILD_DIR/soak}" \
  --seconds "${SOAK_SECONDS:-180}" ${SOAK_ARGS:-}

if [ -n "${SOAK_NO_BLEED_EXCHANGES:-}" ]; then
  no_bleed=$BUILD_DIR/tests/faults/faults_no_bleed_test
  if [ ! -x "$no_bleed" ]; then
    echo "soak: $no_bleed is missing (build first, or unset SKIP_BUILD)" >&2
    exit 2
  fi
  echo "== no-bleed test with $SOAK_NO_BLEED_EXCHANGES exchanges"
  TLSB_SOAK_EXCHANGES=$SOAK_NO_BLEED_EXCHANGES TLSB_TEST_PKI_DIR=$pki \
    TLSB_BINARY_DIR=$BUILD_DIR TLSB_SOURCE_DIR=$PWD \
    "$no_bleed" --gtest_filter='NoBleedTest.*'
fi
