#!/usr/bin/env bash
# The product's main job in one command (`make demo`): install what is missing, build, then
#   - make a throwaway development PKI,
#   - start a real local TLS backend that requires client certificates (the project's
#     multi-connection test server; framed echo: 4-byte length, answers "re:" + payload) and a
#     raw echo backend for bulk Lease streams,
#   - write a broker config and start tlsbroker with mTLS for callers,
#   - run a few thousand BrokerService.Call requests from several concurrent callers (tlsbroker-load),
#   - print a short report: calls, the full TLS handshakes the backend performed, the client IDs
#     (pooled sockets) that served the calls, latency percentiles and the /metrics URL,
# and stop what it started. Everything listens on 127.0.0.1 on ports chosen at run time.
#
#   scripts/demo.sh [--keep-running]
#     --keep-running  leave the broker and the backends running and print how to poke them
#
#   BUILD_DIR     build directory (default: build)
#   SKIP_BUILD=1  do not install packages or build (the binaries must exist)
#   DEMO_CALLS    number of Calls (default 4000)
#   DEMO_CALLERS  concurrent callers (default 16)
#   DEMO_DIR      working directory for the PKI, config and logs (default: BUILD_DIR/demo)
#   DEMO_PKI      an existing test PKI to use (made by tests/support/make_test_pki.sh; default:
#                 DEMO_DIR/pki, made if missing)
#   TLSBROKER_BIN, TLSB_BACKEND_BIN, TLSB_LOAD_BIN  binaries (default: under BUILD_DIR)
#
# Exit code 0 when every call succeeded and the backend saw at most max_sockets handshakes.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=0
for arg in "$@"; do
  case "$arg" in
    --keep-running) keep_running=1 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

BUILD_DIR=${BUILD_DIR:-build}
calls=${DEMO_CALLS:-4000}
callers=${DEMO_CALLERS:-16}
demo=${DEMO_DIR:-$BUILD_DIR/demo}
max_sockets=8

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  # Only the three programs the demo runs; `make test` builds everything else.
  echo "== installing missing packages and building the broker, a test backend and a load"
  echo "   generator into $BUILD_DIR (a first run on a fresh machine takes about 4 minutes on"
  echo "   2 cores, packages included; later runs start at once)"
  INSTALL_DEPS_SET=demo BUILD_TARGET="tlsbroker tlsb-test-backend tlsbroker-load" \
    bash scripts/build.sh "$BUILD_DIR"
fi
broker_bin=${TLSBROKER_BIN:-$BUILD_DIR/services/tlsbroker}
backend_bin=${TLSB_BACKEND_BIN:-$BUILD_DIR/tests/support/tlsb-test-backend}
load_bin=${TLSB_LOAD_BIN:-$BUILD_DIR/tools/load/tlsbroker-load}
for bin in "$broker_bin" "$backend_bin" "$load_bin"; do
  if [ ! -x "$bin" ]; then
    echo "demo: $bin is missing (build first, or unset SKIP_BUILD)" >&2
    exit 1
  fi
done

mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
pki=${DEMO_PKI:-$demo/pki}

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    # Bounded: SIGTERM drains; after 10 s the process is killed.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s; fails after SECONDS.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: timed out after ${seconds}s waiting for $what" >&2
  return 1
}

# http_get PORT PATH: prints the HTTP response (headers and body), using bash's /dev/tcp.
http_get() {
  exec 9<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&9
  timeout 5 cat <&9
  exec 9<&-
}
http_ok() { http_get "$1" "$2" | head -1 | grep -q ' 200'; }

# start_backend NAME MODE [ARGS...]: starts tlsb-test-backend, sets backend_port.
start_backend() {
  local name=$1 mode=$2
  shift 2
  "$backend_bin" --pki "$pki/ec" --mode "$mode" --port 0 --stats-file "$demo/$name.stats" "$@" \
      </dev/null >"$demo/$name.out" 2>"$demo/$name.err" &
  pids+=($!)
  eval "${name//-/_}_pid=$!"
  wait_for 10 "the $name backend to listen" grep -q '^LISTENING' "$demo/$name.out"
  backend_port=$(awk '/^LISTENING/ {print $2; exit}' "$demo/$name.out")
}

# backend_stat NAME KEY: asks the backend for its counters (SIGUSR1 writes the stats file).
backend_stat() {
  local name=$1 key=$2 pid_var="${1//-/_}_pid"
  rm -f "$demo/$name.stats"
  kill -USR1 "${!pid_var}"
  wait_for 5 "the $name backend's stats" test -s "$demo/$name.stats"
  awk -v k="$key" '$1 == k {print $2}' "$demo/$name.stats"
}

echo "== development PKI in $pki (throwaway keys)"
bash tests/support/make_test_pki.sh "$pki"
pki=$(cd "$pki" && pwd)

echo "== starting the TLS backends (client certificates required)"
start_backend backend framed --response-prefix re:
framed_port=$backend_port
start_backend echo-backend echo
echo_port=$backend_port
echo "   framed echo on 127.0.0.1:$framed_port, raw echo on 127.0.0.1:$echo_port"

cat > "$demo/config.yaml" <<EOF
# Written by scripts/demo.sh.
listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  tls:
    cert: $pki/ec/server.fullchain.pem
    key: $pki/ec/server.key
    client_ca: $pki/ec/ca-chain.pem
  admin_callers: ["spiffe://example.org/ns/payments/sa/app1"]
  drain_grace_period: 5s
backends:
  - name: demo
    address: 127.0.0.1:$framed_port
    server_name: localhost
    tls:
      ca: $pki/ec/ca-chain.pem
      cert: $pki/ec/client.fullchain.pem
      key: $pki/ec/client.key
    pool: {min_idle: 2, max_sockets: $max_sockets, acquire_timeout: 5s}
    client_id: {prefix: "DEMO", width: 8}
    framing:
      length_field: {offset: 0, size: 4, big_endian: true, adjustment: -4}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/*"]
  - name: demo-echo
    address: 127.0.0.1:$echo_port
    server_name: localhost
    tls:
      ca: $pki/ec/ca-chain.pem
      cert: $pki/ec/client.fullchain.pem
      key: $pki/ec/client.key
    pool: {min_idle: 0, max_sockets: 4, acquire_timeout: 5s}
    client_id: {prefix: "ECHO", width: 8}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/*"]
EOF

echo "== starting tlsbroker with $demo/config.yaml"
"$broker_bin" --config "$demo/config.yaml" </dev/null >"$demo/broker.log" 2>&1 &
broker_pid=$!
pids+=("$broker_pid")
broker_up() {
  kill -0 "$broker_pid" || { echo "demo: tlsbroker exited; its log:" >&2; cat "$demo/broker.log" >&2; exit 1; }
  grep -q 'tlsbroker serving' "$demo/broker.log"
}
wait_for 20 "tlsbroker to serve" broker_up
serving=$(grep -m1 'tlsbroker serving' "$demo/broker.log")
target=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' <<<"$serving")
metrics_port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' <<<"$serving")
metrics_url="http://127.0.0.1:$metrics_port"
# Ready = every backend has its min_idle sockets (the demo backend's two prewarmed ones).
wait_for 20 "$metrics_url/readyz" http_ok "$metrics_port" /readyz
echo "   gRPC $target (mTLS), metrics $metrics_url/metrics"

handshakes_before=$(( $(backend_stat backend full_handshakes) + $(backend_stat backend resumed_handshakes) ))

echo "== $calls Calls from $callers concurrent callers (tlsbroker-load)"
creds=(--ca "$pki/ec/root.crt" --cert "$pki/ec/client.fullchain.pem" --key "$pki/ec/client.key")
load_rc=0
"$load_bin" --target "$target" "${creds[@]}" --backend demo --mode call \
    --count "$calls" --callers "$callers" --size 1024 --response-prefix re: \
    --metrics-url "$metrics_url" --json >"$demo/load.json" || load_rc=$?
if [ "$load_rc" -ge 2 ]; then
  echo "demo: tlsbroker-load failed to run (exit $load_rc)" >&2
  exit 1
fi

full=$(backend_stat backend full_handshakes)
resumed=$(backend_stat backend resumed_handshakes)
connections=$(backend_stat backend connections_accepted)
requests=$(backend_stat backend requests)

report_rc=0
python3 - "$demo/load.json" "$full" "$resumed" "$connections" "$requests" "$handshakes_before" \
    "$max_sockets" "$metrics_url" "$callers" <<'EOF' || report_rc=$?
import json, sys
r = json.load(open(sys.argv[1]))
full, resumed, conns, requests, before, max_sockets = map(int, sys.argv[2:8])
metrics_url, callers = sys.argv[8], sys.argv[9]
lat = r["latency_us"]
print()
print("== demo report")
print(f"  calls made           {r['operations']} from {callers} callers in {r['elapsed_seconds']:.2f} s"
      f" ({r['operations_per_second']:.0f} calls/s)")
print(f"  errors               {r['errors']}" +
      "".join(f"  {code}: {n}" for code, n in sorted(r["errors_by_code"].items())))
print(f"  corrupt responses    {r['corrupt']}")
print(f"  latency              p50 {lat['p50']} us, p90 {lat['p90']} us, p99 {lat['p99']} us,"
      f" p99.9 {lat['p99_9']} us")
print(f"  backend handshakes   {full} full, {resumed} resumed, {conns} connections accepted,"
      f" {requests} requests served (backend's own count; {before} before the calls,"
      f" prewarm included)")
hs = r.get("handshakes")
if hs:
    print(f"  broker handshakes    {hs['full']} full, {hs['resumed']} resumed, {hs['failed']} failed"
          f" during the calls (tlsbroker_tls_handshakes_total)")
ids = r["client_ids"]
print(f"  client IDs           {len(ids)} distinct (max_sockets {max_sockets}); calls served by each:")
for cid, n in sorted(ids.items()):
    print(f"    {cid}  {n}")
total = full + resumed
if r["operations"]:
    print(f"  handshake-once       {total} TLS handshakes for {r['operations']} calls:"
          f" {r['operations'] / max(total, 1):.0f} calls per handshake")
print(f"  metrics              {metrics_url}/metrics")
ok = r["errors"] == 0 and r["corrupt"] == 0 and total <= max_sockets
print(f"  result               {'OK' if ok else 'FAILED'}: {r['errors']} errors, {r['corrupt']} corrupt,"
      f" handshakes {total} <= max_sockets {max_sockets}: {total <= max_sockets}")
sys.exit(0 if ok else 1)
EOF

if [ "$keep_running" = 1 ] && [ "$report_rc" = 0 ]; then
  cat > "$demo/running.env" <<EOF
TARGET=$target
METRICS_URL=$metrics_url
BROKER_PID=$broker_pid
BACKEND_PID=$backend_pid
ECHO_BACKEND_PID=$echo_backend_pid
CA=$pki/ec/root.crt
CERT=$pki/ec/client.fullchain.pem
KEY=$pki/ec/client.key
EOF
  trap - EXIT
  cat <<EOF

== still running (--keep-running); settings in $demo/running.env
  broker    pid $broker_pid, gRPC $target, log $demo/broker.log
  backends  pids $backend_pid (demo, framed) and $echo_backend_pid (demo-echo, raw echo)
  metrics   curl $metrics_url/metrics
  poke it:
    $BUILD_DIR/tools/tlsbrokerctl/tlsbrokerctl --target $target --ca $pki/ec/root.crt \\
        --cert $pki/ec/client.fullchain.pem --key $pki/ec/client.key backends
    $load_bin --target $target --ca $pki/ec/root.crt \\
        --cert $pki/ec/client.fullchain.pem --key $pki/ec/client.key --backend demo-echo --mode bulk
  stop:     kill $broker_pid $backend_pid $echo_backend_pid
EOF
fi
exit "$report_rc"
