#!/usr/bin/env bash
# ctest clients_*: the example clients of clients/ (docs/clients.md) against the real broker and
# its real TLS backends. The fixture's `start` runs the demo with tiny counts and --keep-running,
# exactly as docs/clients.md tells a newcomer to; `node_install` runs `npm ci` on a copy of
# clients/node's pinned package.json and package-lock.json in the build tree; each case then runs
# an example and checks its output; `stop` ends what the demo left running.
#   clients_test.sh CASE SOURCE_DIR WORK_DIR TLSBROKER_BIN TLSB_BACKEND_BIN TLSB_LOAD_BIN \
#                   TLSBROKERCTL_BIN
# CASE: start | stop | node_install | python_example | python_example_unknown_backend |
#       python_module | node_example | node_example_unknown_backend
# DEMO_PKI (optional): an existing test PKI.
set -uo pipefail
case_name=$1 src=$2 work=$3 ctl=$7
fail() { echo "clients_test($case_name): $*" >&2; exit 1; }
# shellcheck source=../demo/demo_fixture.sh
source "$src/tests/demo/demo_fixture.sh"
python=/usr/bin/python3  # Debian's: its python3-grpcio matches Debian's protoc

if [ "$case_name" = start ]; then
  rm -rf "$work/run" "$work/demo.out" && mkdir -p "$work"
  demo_fixture_start "$src" "$work" "$4" "$5" "$6"
  exit 0
fi

if [ "$case_name" = node_install ]; then
  # npm ci from the committed lock file into the build tree; npm's cache beside it (not the
  # user's ~/.npm), so a re-run is offline. Skipped when the stamp matches the pinned inputs.
  command -v npm >/dev/null || fail "npm is missing (scripts/install-deps.sh installs it)"
  node_dir="$work/node"
  mkdir -p "$node_dir"
  stamp=$(cat "$src/clients/node/package.json" "$src/clients/node/package-lock.json" |
          openssl dgst -sha256 -r | cut -d' ' -f1)
  if [ "$(cat "$node_dir/.stamp" 2>/dev/null)" != "$stamp" ] ||
     [ ! -d "$node_dir/node_modules" ]; then
    rm -rf "$node_dir/node_modules" "$node_dir/.stamp"
    cp "$src/clients/node/package.json" "$src/clients/node/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm_config_cache="$work/npm-cache" timeout 240 npm ci --prefer-offline \
       --no-audit --no-fund --ignore-scripts --loglevel=error) || fail "npm ci failed"
    echo "$stamp" >"$node_dir/.stamp"
  fi
  for pkg in @grpc/grpc-js @grpc/proto-loader; do
    want=$(node -p "require('$src/clients/node/package.json').dependencies['$pkg']")
    got=$(node -p "require('$node_dir/node_modules/$pkg/package.json').version")
    [ "$got" = "$want" ] || fail "$pkg is $got, package.json pins $want"
    echo "clients_test: $pkg $got"
  done
  exit 0
fi

demo_fixture_load "$work"
if [ "$case_name" = stop ]; then
  demo_fixture_stop
  exit 0
fi
creds=(--target "$TARGET" --ca "$CA" --cert "$CERT" --key "$KEY")

# run_example OUT_FILE EXPECTED_EXIT COMMAND...: runs an example with a bound, checks its exit.
run_example() {
  local out=$1 want=$2 rc=0
  shift 2
  timeout 60 "$@" >"$out" 2>"$out.err" || rc=$?
  cat "$out"
  [ "$rc" = "$want" ] || { cat "$out.err"; fail "exit $rc, expected $want"; }
}

# check_call_and_lease OUT LANGUAGE: the Call's response arrived, the printed client ID is one
# of the broker's (the admin API lists that client ID with the same socket ID), and the Lease
# ran on that client ID and got its answer.
check_call_and_lease() {
  local out=$1 lang=$2 client_id socket_id
  grep -qxF "call: response 're:hello from $lang'" "$out" || fail "no Call response"
  client_id=$(sed -n 's/^client ID: \(.*\)$/\1/p' "$out")
  [[ "$client_id" =~ ^DEMO000[1-8]$ ]] || fail "client ID '$client_id' is not a DEMO slot"
  socket_id=$(sed -n "s/^call: client ID $client_id, socket \([0-9]*\),.*/\1/p" "$out")
  [ -n "$socket_id" ] || fail "the call line does not name client ID $client_id and a socket"
  "$ctl" "${creds[@]}" sockets demo --json >"$out.sockets" || fail "tlsbrokerctl sockets failed"
  $python - "$out.sockets" "$client_id" "$socket_id" <<'EOF' || fail "the broker does not list it"
import json, sys
sockets = json.load(open(sys.argv[1]))["sockets"]
mine = [s for s in sockets if s["client_id"] == sys.argv[2]]
if not mine or mine[0]["socket_id"] != sys.argv[3]:
    sys.exit(f"broker lists {[(s['client_id'], s['socket_id']) for s in sockets]}, "
             f"not {sys.argv[2]} on socket {sys.argv[3]}")
EOF
  grep -q "^lease: client ID $client_id, socket $socket_id," "$out" ||
    fail "the lease did not run on client ID $client_id"
  grep -qxF "lease: response 're:hello from $lang (lease)'" "$out" || fail "no Lease response"
  grep -qxF "lease: released, client ID $client_id" "$out" || fail "the lease did not end OK"
  echo "clients_test: $lang example got its answers on client ID $client_id (socket $socket_id)"
}

out="$work/$case_name.out"
node_env=(env "NODE_PATH=$work/node/node_modules")
case "$case_name" in
  python_example)
    run_example "$out" 0 $python "$src/clients/python/example.py" "${creds[@]}"
    check_call_and_lease "$out" python
    ;;
  python_example_unknown_backend)
    run_example "$out" 1 $python "$src/clients/python/example.py" "${creds[@]}" \
      --backend no-such-backend
    grep -qx 'error: NOT_FOUND reason NOT_FOUND retryable no: unknown backend "no-such-backend"' \
      "$out" || fail "no NOT_FOUND line with its reason"
    ;;
  python_module)
    $python "$src/tests/clients/python_client_test.py" "$work/run/running.env" ||
      fail "the module's tests failed"
    ;;
  node_example)
    [ -d "$work/node/node_modules" ] || fail "no node_modules (the node_install fixture failed)"
    run_example "$out" 0 "${node_env[@]}" node "$src/clients/node/example.js" "${creds[@]}" \
      --server-name localhost
    check_call_and_lease "$out" node
    ;;
  node_example_unknown_backend)
    [ -d "$work/node/node_modules" ] || fail "no node_modules (the node_install fixture failed)"
    run_example "$out" 1 "${node_env[@]}" node "$src/clients/node/example.js" "${creds[@]}" \
      --server-name localhost --backend no-such-backend
    grep -qx 'error: NOT_FOUND reason NOT_FOUND: unknown backend "no-such-backend"' "$out" ||
      fail "no NOT_FOUND line with the trailer's reason"
    ;;
  *) fail "unknown case" ;;
esac
echo "clients_test($case_name): OK"
