#!/usr/bin/env bash
# End-to-end benchmark (`make bench`): tlsbroker beside its baselines, in one run, on one
# machine, against the same TLS backend with the same payloads. See BENCHMARKS.md.
#
# It starts a multi-connection TLS echo backend that requires client certificates (the
# project's tlsb-test-backend: framed echo for requests, raw echo for bulk), a bare gRPC echo
# server and tlsbroker, then measures at each concurrency (1, 16, 64 callers, 1 KiB requests):
#   a  direct client, new TCP+TLS connection and full handshake per request
#   b  direct client, new connection per request with TLS session resumption
#   c  direct client, one persistent TLS connection per caller
#   d  bare gRPC unary echo (mTLS listener like the broker's), no backend
#   d1 the same echo answering from a thread of its own (one hand-off, as the broker's answer
#      comes from its I/O loop): (d1) - (d) is what that hand-off alone costs
#   d2 the same gRPC server forwarding each request to the TLS backend from gRPC's own thread,
#      blocking, one persistent connection per gRPC thread: the floor of a proxy (it blocks
#      gRPC's threads while the backend works, which tlsbroker must not do)
#   e  tlsbroker Call
#   f  tlsbroker Lease, --exchanges-per-lease round trips per lease
#   cB / fB  bulk echo in 64 KiB messages: direct persistent connection vs a tlsbroker Lease
# Every cell is run --runs times (interleaved, so drift hits every mode alike); the table gives
# the median and the min..max spread. Then (unless --no-scale) the broker's RSS with 0, 1000
# and 10000 idle pooled sockets and the time to prewarm 1000, and (unless --no-profile) a CPU
# profile of the broker under load (e) with perf (cpu-clock sampling).
#
#   scripts/bench.sh [--quick] [--smoke] [--runs N] [--duration SECONDS] [--callers "1 16 64"]
#                    [--modes "a b c d e f"] [--scale "0 1000 10000"] [--no-scale] [--no-profile]
#     --syscalls  also count the system calls per request of (d) and (e) at 1 caller (strace -c
#               on the server for 2 s under load): thread hand-offs show up as futex and
#               epoll calls, a figure the machine's noise does not move
#     --modes   which of a, b, c, d, d1, d2, e, f (and e0, see TLSBROKER_BASELINE_BIN) to measure; bulk runs with f
#     --quick   1 run of 1 s per cell, scale 0/1000, no profile (about 2 minutes)
#     --smoke   tiny counts for the test suite (seconds; figures meaningless)
#   The full run (3 runs of 3 s per cell, scale, profile) takes about 10 minutes.
#
#   BUILD_DIR      build directory (default: build); built with RelWithDebInfo unless SKIP_BUILD=1
#   BENCH_DIR      working directory: PKI, configs, logs, results (default: BUILD_DIR/bench-run)
#   BENCH_PKI      an existing test PKI (tests/support/make_test_pki.sh); default: made in BENCH_DIR
#   BENCH_MAX_SOCKETS  the broker's max_sockets (= min_idle, prewarmed) for (e) and (f) (16)
#   TLSBROKER_BIN, TLSB_BACKEND_BIN, TLSB_LOAD_BIN, TLSB_DIRECT_BIN, TLSB_GRPC_ECHO_BIN
#   TLSBROKER_BASELINE_BIN  another tlsbroker build (say, of the commit before a change): it runs
#                  beside the first, against the same backends, as mode (e0) "Call, baseline
#                  binary", interleaved with (e) so both see the same noise
#
# Everything listens on 127.0.0.1 on ports chosen at run time; the script stops what it started.
# Exit code 0 when every measurement ran without errors or corrupt responses.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
duration=3
callers_list="1 16 64"
bulk_callers_list="1 16"
scale_list="0 1000 10000"
do_scale=1
do_profile=1
do_syscalls=0
smoke=0
bulk_bytes=$((16 * 1024 * 1024))
exchanges_per_lease=100
modes="a b c d d1 d2 e f"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=1; duration=1; scale_list="0 1000"; do_profile=0 ;;
    --smoke) smoke=1; runs=1; duration=0.3; callers_list="1 4"; bulk_callers_list="2"
             scale_list="0 20"; do_profile=0; bulk_bytes=$((1024 * 1024)); exchanges_per_lease=10 ;;
    --runs) runs=$2; shift ;;
    --duration) duration=$2; shift ;;
    --callers) callers_list=$2; shift ;;
    --scale) scale_list=$2; shift ;;
    --modes) modes=$2; shift ;;
    --no-scale) do_scale=0 ;;
    --no-profile) do_profile=0 ;;
    --syscalls) do_syscalls=1 ;;
    -h|--help) sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD_DIR=${BUILD_DIR:-build}
max_sockets=${BENCH_MAX_SOCKETS:-16}
targets="tlsbroker tlsb-test-backend tlsbroker-load tlsb-bench-direct tlsb-bench-grpc-echo"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building $targets into $BUILD_DIR (RelWithDebInfo)"
  bash scripts/install-deps.sh
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  # shellcheck disable=SC2086
  cmake --build "$BUILD_DIR" --target $targets -j "$(nproc)"
fi
broker_bin=${TLSBROKER_BIN:-$BUILD_DIR/services/tlsbroker}
backend_bin=${TLSB_BACKEND_BIN:-$BUILD_DIR/tests/support/tlsb-test-backend}
load_bin=${TLSB_LOAD_BIN:-$BUILD_DIR/tools/load/tlsbroker-load}
direct_bin=${TLSB_DIRECT_BIN:-$BUILD_DIR/bench/e2e/tlsb-bench-direct}
echo_bin=${TLSB_GRPC_ECHO_BIN:-$BUILD_DIR/bench/e2e/tlsb-bench-grpc-echo}
for bin in "$broker_bin" "$backend_bin" "$load_bin" "$direct_bin" "$echo_bin"; do
  if [ ! -x "$bin" ]; then
    echo "bench: $bin is missing (build first, or unset SKIP_BUILD)" >&2
    exit 1
  fi
done

work=${BENCH_DIR:-$BUILD_DIR/bench-run}
mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -rf "$work/results"
mkdir -p "$work/results"
pki=${BENCH_PKI:-$work/pki}
results="$work/results/cells.tsv"

# 10,000 pooled sockets need 10,000 descriptors in the broker and in the backend.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec 3>&2  # the real stderr, for messages from commands polled with stderr hidden
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
  pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: stops one process started here and forgets it.
stop() {
  local pid=$1 p kept=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s; fails after SECONDS.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench: timed out after ${seconds}s waiting for $what" >&2
  return 1
}

http_get() {
  exec 9<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&9
  timeout 5 cat <&9
  exec 9<&-
}
http_ok() { http_get "$1" "$2" | head -1 | grep -q ' 200'; }

# cpu_ticks PID: user + system CPU time of PID in clock ticks (/proc/PID/stat fields 14, 15;
# the command name in field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# ctx_switches PID: context switches of all PID's threads so far (voluntary + involuntary): a
# thread hand-off costs a sleep and a wake-up, so this counts them where CPU time is noisy.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches:/ {n += $2} END {print n + 0}'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# start_backend NAME MODE [ARGS...]: starts tlsb-test-backend; sets <NAME>_pid and backend_port.
start_backend() {
  local name=$1 mode=$2
  shift 2
  rm -f "$work/$name.out"  # a previous run's file would be read before the shell truncates it
  "$backend_bin" --pki "$pki/ec" --mode "$mode" --port 0 --stats-file "$work/$name.stats" "$@" \
      </dev/null >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "${name//-/_}_pid=$!"
  wait_for 10 "the $name backend to listen" grep -q '^LISTENING' "$work/$name.out"
  backend_port=$(awk '/^LISTENING/ {print $2; exit}' "$work/$name.out")
}

# backend_stats NAME: prints "full resumed" handshakes of the backend (SIGUSR1 writes its stats).
backend_stats() {
  local name=$1 pid_var="${1//-/_}_pid"
  rm -f "$work/$name.stats"
  kill -USR1 "${!pid_var}"
  wait_for 5 "the $name backend's stats" test -s "$work/$name.stats"
  awk '$1 == "full_handshakes" {f = $2} $1 == "resumed_handshakes" {r = $2}
       END {print f + 0, r + 0}' "$work/$name.stats"
}

# backend_yaml NAME PORT MIN_IDLE MAX_SOCKETS FRAMED: one backends: entry of the broker config.
backend_yaml() {
  cat <<EOF
  - name: $1
    address: 127.0.0.1:$2
    server_name: localhost
    tls:
      ca: $pki/ec/ca-chain.pem
      cert: $pki/ec/client.fullchain.pem
      key: $pki/ec/client.key
    pool: {min_idle: $3, max_sockets: $4, acquire_timeout: 10s, connect_timeout: 10s, handshake_timeout: 30s}
    client_id: {prefix: "$(case $1 in bench-echo) echo E ;; scale) echo S ;; *) echo B ;; esac)", width: 8}
    allowed_callers: ["spiffe://example.org/ns/payments/sa/*"]
EOF
  if [ "$5" = 1 ]; then
    echo "    framing: {length_field: {offset: 0, size: 4, big_endian: true, adjustment: -4}}"
  fi
}

# start_broker NAME CONFIG_BODY_FILE READY_TIMEOUT: starts tlsbroker; sets broker_pid, target,
# metrics_port and ready_seconds (start to /readyz 200, i.e. every min_idle socket up).
start_broker() {
  local name=$1 backends=$2 timeout=$3
  cat > "$work/$name.yaml" <<EOF
# Written by scripts/bench.sh.
listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  tls:
    cert: $pki/ec/server.fullchain.pem
    key: $pki/ec/server.key
    client_ca: $pki/ec/ca-chain.pem
  drain_grace_period: 2s
backends:
EOF
  cat "$backends" >> "$work/$name.yaml"
  local t0 t1
  t0=$(date +%s.%N)
  rm -f "$work/$name.log"
  "$broker_bin" --config "$work/$name.yaml" </dev/null >"$work/$name.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
  broker_up() {
    kill -0 "$broker_pid" || { echo "bench: tlsbroker exited; its log:" >&3; cat "$work/$name.log" >&3; exit 1; }
    grep -q 'tlsbroker serving' "$work/$name.log"
  }
  wait_for 20 "tlsbroker to serve" broker_up
  local serving
  serving=$(grep -m1 'tlsbroker serving' "$work/$name.log")
  target=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' <<<"$serving")
  metrics_port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' <<<"$serving")
  wait_for "$timeout" "tlsbroker /readyz" http_ok "$metrics_port" /readyz
  t1=$(date +%s.%N)
  ready_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
}

echo "== test PKI in $pki (throwaway keys)"
bash tests/support/make_test_pki.sh "$pki" >/dev/null
pki=$(cd "$pki" && pwd)
creds=(--ca "$pki/ec/root.crt" --cert "$pki/ec/client.fullchain.pem" --key "$pki/ec/client.key")

echo "== starting backends, the gRPC echo baseline and tlsbroker (max_sockets $max_sockets)"
start_backend framed framed --response-prefix re:
framed_port=$backend_port
start_backend echo echo
echo_port=$backend_port
rm -f "$work/grpc-echo.out"
"$echo_bin" --cert "$pki/ec/server.fullchain.pem" --key "$pki/ec/server.key" \
    --client-ca "$pki/ec/ca-chain.pem" --response-prefix re: </dev/null \
    >"$work/grpc-echo.out" 2>"$work/grpc-echo.err" &
grpc_echo_pid=$!
pids+=("$grpc_echo_pid")
wait_for 10 "the gRPC echo server" grep -q '^LISTENING' "$work/grpc-echo.out"
grpc_echo_port=$(awk '/^LISTENING/ {print $2; exit}' "$work/grpc-echo.out")
if [[ " $modes " == *" d2 "* ]]; then
  rm -f "$work/grpc-forward.out"
  "$echo_bin" --cert "$pki/ec/server.fullchain.pem" --key "$pki/ec/server.key" \
      --client-ca "$pki/ec/ca-chain.pem" --forward-to "127.0.0.1:$framed_port" \
      --forward-ca "$pki/ec/root.crt" --forward-cert "$pki/ec/client.fullchain.pem" \
      --forward-key "$pki/ec/client.key" </dev/null \
      >"$work/grpc-forward.out" 2>"$work/grpc-forward.err" &
  grpc_forward_pid=$!
  pids+=("$grpc_forward_pid")
  wait_for 10 "the forwarding gRPC server" grep -q '^LISTENING' "$work/grpc-forward.out"
  grpc_forward_port=$(awk '/^LISTENING/ {print $2; exit}' "$work/grpc-forward.out")
fi
if [[ " $modes " == *" d1 "* ]]; then
  rm -f "$work/grpc-echo-loop.out"
  "$echo_bin" --cert "$pki/ec/server.fullchain.pem" --key "$pki/ec/server.key" \
      --client-ca "$pki/ec/ca-chain.pem" --response-prefix re: --answer-from-loop </dev/null \
      >"$work/grpc-echo-loop.out" 2>"$work/grpc-echo-loop.err" &
  grpc_echo_loop_pid=$!
  pids+=("$grpc_echo_loop_pid")
  wait_for 10 "the gRPC echo server (answering from a loop)" \
      grep -q '^LISTENING' "$work/grpc-echo-loop.out"
  grpc_echo_loop_port=$(awk '/^LISTENING/ {print $2; exit}' "$work/grpc-echo-loop.out")
fi
max_bulk_callers=1
for n in $bulk_callers_list; do [ "$n" -gt "$max_bulk_callers" ] && max_bulk_callers=$n; done
{
  backend_yaml bench "$framed_port" "$max_sockets" "$max_sockets" 1
  backend_yaml bench-echo "$echo_port" "$max_bulk_callers" "$max_bulk_callers" 0
} > "$work/backends-main.yaml"
start_broker broker "$work/backends-main.yaml" 30
main_broker_pid=$broker_pid
main_target=$target
baseline_bin=${TLSBROKER_BASELINE_BIN:-}
if [ -n "$baseline_bin" ]; then
  broker_bin_kept=$broker_bin
  broker_bin=$baseline_bin
  start_broker broker-baseline "$work/backends-main.yaml" 30
  broker_bin=$broker_bin_kept
  baseline_broker_pid=$broker_pid
  baseline_target=$target
  echo "   baseline tlsbroker ($baseline_bin) $baseline_target (pid $baseline_broker_pid)"
elif [[ " $modes " == *" e0 "* ]]; then
  echo "bench: mode e0 needs TLSBROKER_BASELINE_BIN" >&2
  exit 2
fi
echo "   framed 127.0.0.1:$framed_port, echo 127.0.0.1:$echo_port, gRPC echo" \
     "127.0.0.1:$grpc_echo_port, tlsbroker $main_target (pid $main_broker_pid)"

failures=0
# measure MODE CALLERS RUN: one cell; appends a line to $results.
measure() {
  local mode=$1 callers=$2 run=$3 out="$work/results/$1-$2-$3.json"
  local bounds=(--duration "${duration}s")
  local cpu_pid="" backend=framed cmd=()
  case "$mode" in
    a) cmd=("$direct_bin" --address "127.0.0.1:$framed_port" --mode full) ;;
    b) cmd=("$direct_bin" --address "127.0.0.1:$framed_port" --mode resume) ;;
    c) cmd=("$direct_bin" --address "127.0.0.1:$framed_port" --mode persistent) ;;
    cB) backend=echo; cmd=("$direct_bin" --address "127.0.0.1:$echo_port" --mode bulk
                          --bulk-bytes "$bulk_bytes") ;;
    d) cpu_pid=$grpc_echo_pid
       cmd=("$load_bin" --target "127.0.0.1:$grpc_echo_port"
            --backend echo --mode call --channels "$callers") ;;
    d1) cpu_pid=$grpc_echo_loop_pid
        cmd=("$load_bin" --target "127.0.0.1:$grpc_echo_loop_port"
             --backend echo --mode call --channels "$callers") ;;
    d2) cpu_pid=$grpc_forward_pid
        cmd=("$load_bin" --target "127.0.0.1:$grpc_forward_port"
             --backend echo --mode call --channels "$callers") ;;
    e) cpu_pid=$main_broker_pid
       cmd=("$load_bin" --target "$main_target" --backend bench --mode call --channels "$callers") ;;
    e0) cpu_pid=$baseline_broker_pid
        cmd=("$load_bin" --target "$baseline_target" --backend bench --mode call --channels "$callers") ;;
    f) cpu_pid=$main_broker_pid
       cmd=("$load_bin" --target "$main_target" --backend bench --mode lease
            --exchanges-per-lease "$exchanges_per_lease" --channels "$callers") ;;
    fB) cpu_pid=$main_broker_pid; backend=echo
        cmd=("$load_bin" --target "$main_target" --backend bench-echo --mode bulk
             --bulk-bytes "$bulk_bytes" --channels "$callers") ;;
  esac
  local hs_before hs_after cpu_before=0 cpu_after=0 cs_before=0 cs_after=0 rc=0
  hs_before=$(backend_stats "$backend")
  [ -n "$cpu_pid" ] && cpu_before=$(cpu_ticks "$cpu_pid") && cs_before=$(ctx_switches "$cpu_pid")
  "${cmd[@]}" "${creds[@]}" --callers "$callers" --size 1024 --response-prefix re: \
      "${bounds[@]}" --json >"$out" 2>"$out.err" || rc=$?
  [ -n "$cpu_pid" ] && cpu_after=$(cpu_ticks "$cpu_pid") && cs_after=$(ctx_switches "$cpu_pid")
  hs_after=$(backend_stats "$backend")
  if [ "$rc" != 0 ]; then
    failures=$((failures + 1))
    echo "   $mode at $callers callers (run $run) failed (exit $rc): $(head -c 300 "$out.err")" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$callers" "$run" "$out" \
      "$hs_before $hs_after" "$cpu_before $cpu_after" "$rc" "$cs_before $cs_after" >>"$results"
}

cells=0
for _ in $(seq 1 "$runs"); do
  for callers in $callers_list; do cells=$((cells + $(wc -w <<<"$modes"))); done
  if [[ " $modes " == *" f "* ]]; then
    for callers in $bulk_callers_list; do cells=$((cells + 2)); done
  fi
done
echo "== $cells cells: $runs run(s) x modes {$modes} at callers {$callers_list}, bulk at" \
     "{$bulk_callers_list}, ${duration}s each"
for run in $(seq 1 "$runs"); do
  for callers in $callers_list; do
    for mode in $modes; do
      measure "$mode" "$callers" "$run"
    done
    echo "   run $run, $callers callers done"
  done
  if [[ " $modes " == *" f "* ]]; then
    for callers in $bulk_callers_list; do
      for mode in cB fB; do measure "$mode" "$callers" "$run"; done
    done
  fi
done

# ---- CPU profile of the broker under load (e) at 16 callers (before the scale step, whose
# thousands of backend threads would disturb it).
if [ "$do_profile" = 1 ] && command -v perf >/dev/null; then
  echo "== profile: perf (cpu-clock sampling) of tlsbroker under Call load, 16 callers"
  "$load_bin" --target "$main_target" "${creds[@]}" --backend bench --mode call --callers 16 \
      --channels 16 --size 1024 --duration 12s --json >"$work/results/profile-load.json" 2>&1 &
  load_pid=$!
  sleep 1
  perf record -e cpu-clock -F 499 -g -p "$main_broker_pid" -o "$work/results/perf.data" \
      -- sleep 8 >/dev/null 2>&1 || true
  wait "$load_pid" || true
  perf report -i "$work/results/perf.data" --no-children --sort symbol --stdio \
      --percent-limit 1.5 -g none 2>/dev/null | grep -v '^$' | head -60 \
      >"$work/results/perf-top.txt" || true
  perf report -i "$work/results/perf.data" --no-children --sort dso --stdio -g none \
      2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 >"$work/results/perf-dso.txt" || true
fi

# ---- System calls per request at 1 caller: (d) the gRPC echo server, (e) tlsbroker (and (e0)
# the baseline build). At one
# caller every request is answered with one sendmsg on the caller's connection, which counts
# the requests seen while strace was attached.
syscalls_file="$work/results/syscalls.tsv"
: > "$syscalls_file"
if [ "$do_syscalls" = 1 ] && command -v strace >/dev/null; then
  echo "== system calls per request at 1 caller (strace -c for 2 s under load)"
  for mode in d e ${baseline_bin:+e0}; do
    case $mode in
      d) pid=$grpc_echo_pid; tgt="127.0.0.1:$grpc_echo_port"; be=echo ;;
      e) pid=$main_broker_pid; tgt=$main_target; be=bench ;;
      e0) pid=$baseline_broker_pid; tgt=$baseline_target; be=bench ;;
    esac
    "$load_bin" --target "$tgt" "${creds[@]}" --backend "$be" --mode call --callers 1 \
        --channels 1 --size 1024 --response-prefix re: --duration 5s --json \
        >"$work/results/syscalls-load-$mode.json" 2>&1 &
    load_pid=$!
    sleep 1
    timeout -s INT 2 strace -c -f -p "$pid" -o "$work/results/strace-$mode.txt" 2>/dev/null || true
    wait "$load_pid" || true
    awk -v mode="$mode" '$NF ~ /^[a-z_0-9]+$/ && $1 ~ /^[0-9.]+$/ && $NF != "total" &&
                         $NF != "restart_syscall" { n[$NF] = $4; total += $4 }
         END { printf "%s\t%d\t%d\t%d\t%d\t%d\n", mode, n["sendmsg"], total, n["futex"],
               n["epoll_wait"], n["epoll_ctl"] }' "$work/results/strace-$mode.txt" >>"$syscalls_file"
  done
fi

# ---- Scale and memory: RSS with N idle pooled sockets, time to prewarm them.
scale_file="$work/results/scale.tsv"
: > "$scale_file"
if [ "$do_scale" = 1 ]; then
  echo "== scale: broker RSS with {$scale_list} idle pooled sockets (fd limit $(ulimit -n))"
  start_backend scale framed --response-prefix re:
  scale_port=$backend_port
  for n in $scale_list; do
    if [ "$n" = 0 ]; then
      backend_yaml scale "$scale_port" 0 1 1 > "$work/backends-scale.yaml"
    else
      backend_yaml scale "$scale_port" "$n" "$n" 1 > "$work/backends-scale.yaml"
    fi
    if ! start_broker "broker-scale-$n" "$work/backends-scale.yaml" 240; then
      echo "   $n sockets: not ready within 240 s; skipped" >&2
      stop "$broker_pid"
      continue
    fi
    sleep 2  # let allocator caches and gRPC's threads settle before reading RSS
    printf '%s\t%s\t%s\n' "$n" "$(rss_kib "$broker_pid")" "$ready_seconds" >>"$scale_file"
    echo "   $n sockets: RSS $(rss_kib "$broker_pid") KiB, ready after ${ready_seconds}s"
    stop "$broker_pid"
  done
  stop "$scale_pid"
  # What this machine's crypto allows: ECDSA P-256 (the PKI's keys) and X25519 (the key share).
  openssl speed -seconds 1 ecdsap256 ecdhx25519 >"$work/results/openssl-speed.txt" 2>/dev/null || true
fi

echo
python3 - "$results" "$scale_file" "$work/results" "$max_sockets" "$exchanges_per_lease" \
    "$runs" "$duration" "$syscalls_file" <<'EOF'
import json, os, re, statistics, sys
results, scale_file, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
max_sockets, epl, runs, duration = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
syscalls_file = sys.argv[8]
hz = os.sysconf("SC_CLK_TCK")
cells = {}
for line in open(results):
    mode, callers, run, path, hs, cpu, rc, cs = line.rstrip("\n").split("\t")
    try:
        r = json.load(open(path))
    except Exception:
        continue
    hb_f, hb_r, ha_f, ha_r = map(int, hs.split())
    c0, c1 = map(float, cpu.split())
    s0, s1 = map(float, cs.split())
    bulk = mode.endswith("B")
    # Requests: exchanges for framed modes (a Lease carries many), MB/s for bulk.
    reqs = r["exchanges"] if not bulk else r["operations"]
    rate = r["mb_per_second"] if bulk else r["exchanges_per_second"]
    lat = r["latency_us"]
    per10k = lambda x: x * 10000.0 / reqs if reqs else float("nan")
    cells.setdefault((mode, int(callers)), []).append(dict(
        rate=rate, p50=lat["p50"], p99=lat["p99"], errors=r["errors"] + r["corrupt"],
        hs=per10k((ha_f - hb_f) + (ha_r - hb_r)), full=ha_f - hb_f, resumed=ha_r - hb_r,
        cpu=per10k((c1 - c0) / hz) if mode in ("d", "d1", "d2", "e", "e0", "f") else None,
        cs=(s1 - s0) / reqs if mode in ("d", "d1", "d2", "e", "e0", "f") and reqs else None, n=reqs))

def med(mode, callers, key):
    v = [c[key] for c in cells.get((mode, callers), []) if c[key] is not None]
    return statistics.median(v) if v else None

def spread(mode, callers, key):
    v = [c[key] for c in cells.get((mode, callers), []) if c[key] is not None]
    return (min(v), max(v)) if v else None

def fmt(x, digits=0):
    if x is None: return "—"
    if digits == 0: return f"{x:,.0f}"
    return f"{x:.{digits}f}"

names = {"a": "(a) direct, full handshake per request", "b": "(b) direct, resumed session per request",
         "c": "(c) direct, persistent connection", "d": "(d) bare gRPC unary echo",
         "d1": "(d1) bare gRPC echo answering from a loop thread",
         "d2": "(d2) gRPC forwarding on its own thread, blocking (proxy floor)",
         "e": "(e) tlsbroker Call", "e0": "(e0) tlsbroker Call, baseline binary", "f": f"(f) tlsbroker Lease, {epl} exchanges per lease",
         "cB": "(c) bulk, direct persistent connection", "fB": "(f) bulk, tlsbroker Lease"}
out = []
out.append(f"Medians of {runs} run(s) of {duration} s per cell, [min..max] over the runs; "
           "1 KiB requests; bulk: 64 KiB messages.")
out.append("")
out.append("| mode | callers | throughput | p50 µs | p99 µs | handshakes / 10k req | server CPU s / 10k req | server context switches / req | errors |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
callers_seen = sorted({c for (_, c) in cells})
for mode in ["a", "b", "c", "d", "d1", "d2", "e", "e0", "f", "cB", "fB"]:
    for callers in callers_seen:
        if (mode, callers) not in cells: continue
        lo, hi = spread(mode, callers, "rate")
        unit = "MB/s" if mode.endswith("B") else "req/s"
        cpu = med(mode, callers, "cpu")
        cs = spread(mode, callers, "cpu")
        cpu_s = "—" if cpu is None else f"{cpu:.3f} [{cs[0]:.3f}..{cs[1]:.3f}]"
        p50lo, p50hi = spread(mode, callers, "p50")
        errors = sum(c["errors"] for c in cells[(mode, callers)])
        csw = med(mode, callers, "cs")
        csw_s = "—" if csw is None else f"{csw:.2f}"
        out.append(f"| {names[mode]} | {callers} | {fmt(med(mode, callers, 'rate'))} {unit} "
                   f"[{fmt(lo)}..{fmt(hi)}] | {fmt(med(mode, callers, 'p50'))} [{fmt(p50lo)}..{fmt(p50hi)}] "
                   f"| {fmt(med(mode, callers, 'p99'))} | {fmt(med(mode, callers, 'hs'), 1)} | {cpu_s} | {csw_s} | {errors} |")
out.append("")
out.append("Server CPU: (d)/(d1)/(d2) the gRPC echo server, (e)/(e0)/(f) tlsbroker (utime+stime from /proc/PID/stat).")
out.append("Handshakes: counted by the backend (full + resumed) during the cell.")
out.append("")

def ratio_row(label, num, den, callers, target):
    # Ratio of medians, and the range over per-run ratios (run i of num over run i of den).
    a, b = cells.get((num, callers)), cells.get((den, callers))
    if not a or not b: return
    rs = [x["rate"] / y["rate"] for x, y in zip(a, b) if y["rate"]]
    m = med(num, callers, "rate") / med(den, callers, "rate") if med(den, callers, "rate") else None
    ok = "" if target is None or m is None else ("met" if m >= target else "missed")
    out.append(f"| {label} | {callers} | {fmt(m, 2)} [{fmt(min(rs), 2)}..{fmt(max(rs), 2)}] | "
               f"{'≥ ' + str(target) if target else '—'} | {ok} |")

out.append("| ratio (throughput) | callers | median [range of per-run ratios] | target | status |")
out.append("|---|---:|---:|---:|---|")
for callers in callers_seen:
    ratio_row("(e)/(a)", "e", "a", callers, 10 if callers == 16 else None)
for callers in callers_seen:
    ratio_row("(e)/(b)", "e", "b", callers, 10 if callers == 16 else None)
for callers in callers_seen:
    ratio_row("(e)/(c)", "e", "c", callers, 0.5 if callers == 16 else None)
for callers in callers_seen:
    ratio_row("(e)/(d)", "e", "d", callers, 0.6 if callers in (16, 64) else None)
for callers in callers_seen:
    ratio_row("(d1)/(d) echo answering from a loop thread", "d1", "d", callers, None)
for callers in callers_seen:
    ratio_row("(d2)/(d) proxy floor", "d2", "d", callers, None)
for callers in callers_seen:
    ratio_row("(f)/(c) Lease exchanges", "f", "c", callers, None)
for callers in sorted({c for (m, c) in cells if m.endswith("B")}):
    ratio_row("(f)/(c) bulk", "fB", "cB", callers, 0.5)
for callers in callers_seen:
    ratio_row("(e)/(e0) this build / baseline build", "e", "e0", callers, None)
out.append("")

def cpu_row(label, num, den, callers, target):
    # Server CPU per request, ratio of medians and the range of per-run ratios (lower is better).
    a, b = cells.get((num, callers)), cells.get((den, callers))
    if not a or not b: return
    rs = [x["cpu"] / y["cpu"] for x, y in zip(a, b) if x["cpu"] and y["cpu"]]
    if not rs: return
    m = med(num, callers, "cpu") / med(den, callers, "cpu")
    ok = "" if target is None else ("met" if m <= target else "missed")
    out.append(f"| {label} | {callers} | {fmt(m, 2)} [{fmt(min(rs), 2)}..{fmt(max(rs), 2)}] | "
               f"{'≤ ' + str(target) if target else '—'} | {ok} |")

out.append("| ratio (server CPU per request) | callers | median [range of per-run ratios] | target | status |")
out.append("|---|---:|---:|---:|---|")
for callers in callers_seen:
    cpu_row("(e)/(d) broker per Call vs gRPC echo", "e", "d", callers, 1.5 if callers == 16 else None)
for callers in callers_seen:
    cpu_row("(d1)/(d) echo answering from a loop thread", "d1", "d", callers, None)
for callers in callers_seen:
    cpu_row("(e)/(d1) broker per Call vs that echo", "e", "d1", callers, None)
for callers in callers_seen:
    cpu_row("(d2)/(d) proxy floor vs gRPC echo", "d2", "d", callers, None)
for callers in callers_seen:
    cpu_row("(e)/(d2) broker per Call vs the proxy floor", "e", "d2", callers, None)
for callers in callers_seen:
    cpu_row("(e)/(e0) this build / baseline build", "e", "e0", callers, None)
out.append("")
for callers in callers_seen:
    pe, pc, pd = med("e", callers, "p50"), med("c", callers, "p50"), med("d", callers, "p50")
    if None in (pe, pc, pd): continue
    extra = pe - pc - pd
    per_run = [x["p50"] - y["p50"] - z["p50"] for x, y, z in
               zip(cells[("e", callers)], cells[("c", callers)], cells[("d", callers)])]
    tgt = " (target ≤ 50 µs: " + ("met" if extra <= 50 else "missed") + ")" if callers == 1 else ""
    out.append(f"- p50(e) − p50(c) − p50(d) at {callers} caller(s): {extra:+.0f} µs "
               f"[per run {min(per_run):+.0f}..{max(per_run):+.0f}]{tgt}")
hs_e = [c for k, v in cells.items() if k[0] == "e" for c in v]
if hs_e:
    worst = max(c["hs"] for c in hs_e)
    out.append(f"- handshakes per 10,000 Calls (e), worst cell: {worst:.1f} "
               f"(target ≤ max_sockets = {max_sockets}: {'met' if worst <= max_sockets else 'missed'})")

scale = [l.split("\t") for l in open(scale_file).read().splitlines() if l.strip()]
if scale:
    out.append("")
    out.append("| idle pooled sockets | broker RSS | bytes per socket (over 0 sockets) | start to ready (prewarm) |")
    out.append("|---:|---:|---:|---:|")
    base = next((int(r) for n, r, _ in scale if n == "0"), None)
    for n, rss, ready in scale:
        n, rss = int(n), int(rss)
        per = (rss - base) * 1024 / n if n and base is not None else None
        out.append(f"| {n:,} | {rss / 1024:,.1f} MiB | {fmt(per) + ' B' if per else '—'} | {float(ready):.2f} s |")
    speed = os.path.join(outdir, "openssl-speed.txt")
    if os.path.exists(speed):
        txt = open(speed).read()
        m = re.search(r"256 bits ecdsa \(nistp256\)\s+([\d.]+)s\s+([\d.]+)s\s+([\d.]+)\s+([\d.]+)", txt)
        x = re.search(r"253 bits ecdh \(X25519\)\s+([\d.]+)s\s+([\d.]+)", txt)
        if m and x:
            # The per-operation columns print 0.0000s at this speed: use the rates.
            sign_s, verify_s, x_s = 1 / float(m.group(3)), 1 / float(m.group(4)), 1 / float(x.group(2))
            # One mutual TLS 1.3 handshake with these keys, both ends together: 2 ECDSA signs
            # (CertificateVerify), 6 verifies (each side: the peer's CertificateVerify and a
            # 2-certificate chain), 4 X25519 operations (keygen and derive on each side).
            t = 2 * sign_s + 6 * verify_s + 4 * x_s
            out.append("")
            out.append(f"- openssl speed (one core): ECDSA P-256 {1 / sign_s:,.0f} sign/s, "
                       f"{1 / verify_s:,.0f} verify/s; X25519 {1 / x_s:,.0f} op/s. "
                       f"Crypto of one mutual-TLS handshake (both ends): {t * 1e6:.0f} µs, so "
                       f"at most {2 / t:,.0f} handshakes/s on 2 cores.")
            for n, rss, ready in scale:
                if int(n) == 1000:
                    out.append(f"- prewarm of 1,000 sockets: {float(ready):.2f} s from start to ready = "
                               f"{1000 / float(ready):,.0f} handshakes/s ({1000 / float(ready) / (2 / t):.2f}× "
                               f"the crypto bound; includes process start).")
sys_rows = {}
for l in open(syscalls_file).read().splitlines():
    mode, sends, total, futex, ewait, ectl = l.split("\t")
    if int(sends) > 0:
        sys_rows[mode] = [int(x) / int(sends) for x in (total, futex, ewait, ectl)]
if sys_rows:
    out.append("")
    out.append("| system calls per request, 1 caller | all | futex | epoll_wait | epoll_ctl |")
    out.append("|---|---:|---:|---:|---:|")
    for mode in ("d", "e", "e0"):
        if mode in sys_rows:
            out.append(f"| {names[mode]} | " + " | ".join(f"{x:.1f}" for x in sys_rows[mode]) + " |")
    if "d" in sys_rows and "e" in sys_rows:
        out.append(f"- (e)/(d) system calls per request: {sys_rows['e'][0] / sys_rows['d'][0]:.2f}")
text = "\n".join(out) + "\n"
open(os.path.join(outdir, "table.md"), "w").write(text)
print(text)
EOF
for f in perf-top.txt perf-dso.txt; do
  if [ -s "$work/results/$f" ]; then echo "== $f"; cat "$work/results/$f"; fi
done
echo "results in $work/results (table.md, one JSON per cell)"
[ "$failures" = 0 ]
