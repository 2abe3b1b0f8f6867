# Sourced by the ctest scripts that run their cases against the demo's broker and backends
# (tests/demo/load_test.sh, tests/clients/clients_test.sh): start them with scripts/demo.sh
# --keep-running, load what it left in running.env, stop them. The caller defines fail().

# demo_fixture_start SOURCE_DIR WORK_DIR TLSBROKER_BIN TLSB_BACKEND_BIN TLSB_LOAD_BIN: the demo
# with tiny counts, left running; its settings in WORK_DIR/run/running.env.
demo_fixture_start() {
  local src=$1 work=$2
  SKIP_BUILD=1 DEMO_CALLS=20 DEMO_CALLERS=2 DEMO_DIR="$work/run" BUILD_DIR="$work" \
    TLSBROKER_BIN=$3 TLSB_BACKEND_BIN=$4 TLSB_LOAD_BIN=$5 \
    timeout 60 bash "$src/scripts/demo.sh" --keep-running >"$work/demo.out" 2>&1 ||
    { cat "$work/demo.out"; fail "demo.sh --keep-running failed"; }
  cat "$work/run/running.env"
}

# demo_fixture_load WORK_DIR: sources running.env (TARGET, CA, CERT, KEY, the PIDs, ...).
demo_fixture_load() {
  [ -f "$1/run/running.env" ] || fail "no running broker (the start fixture failed)"
  # shellcheck disable=SC1091
  source "$1/run/running.env"
}

# demo_fixture_stop: SIGTERM to what the demo left running; fails if the broker outlives 10 s.
demo_fixture_stop() {
  kill "$BROKER_PID" "$BACKEND_PID" "$ECHO_BACKEND_PID" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$BROKER_PID" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$BROKER_PID" 2>/dev/null
  fail "tlsbroker did not exit within 10 s of SIGTERM"
}
