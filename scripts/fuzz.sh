#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DTLSB_FUZZ=ON: ASan+UBSan+coverage) and runs each for a
# bounded time on its checked-in seeds. Exits non-zero when a target finds a crash, leak or
# timeout; the input is saved under $BUILD_DIR/fuzz-artifacts/<target>/. After fixing the bug,
# copy that input into fuzz/crashes/<target>/ so that tests/fuzz replays it in every build.
#   BUILD_DIR      build directory (default: build-fuzz)
#   FUZZ_SECONDS   seconds per target (default: 20)
#   FUZZ_TARGETS   targets to run (default: all six)
#   FUZZ_ARGS      extra libFuzzer flags (e.g. -jobs=2 -workers=2)
#   FUZZ_PARALLEL  targets run at once (default: the number of cores)
#   FUZZ_BUILD     extra targets to build with clang (default: tlsbroker, i.e. the core and the
#                  services, so that clang's -Wthread-safety -Werror checks every annotated
#                  class; "all" builds the whole tree)
# New inputs that reach new code go to $BUILD_DIR/fuzz-work/<target>/ (kept between runs), not
# into the repository; promote a few small ones to fuzz/corpus/<target>/ by hand if useful.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_TARGETS=${FUZZ_TARGETS:-config_loader peer_name length_field delimiter lease_request backend_bytes}

bash scripts/install-deps.sh
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTLSB_FUZZ=ON -DTLSB_WERROR=ON -DTLSB_BUILD_BENCHMARKS=OFF >/dev/null
targets=()
for t in $FUZZ_TARGETS; do targets+=("fuzz_$t"); done
# shellcheck disable=SC2206
targets+=(${FUZZ_BUILD-tlsbroker})
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One target per core at a time: each run is single-threaded, so on 2 cores the six targets take
# four rounds of FUZZ_SECONDS instead of six. Each run writes its own log; results are read back
# in target order so the summary does not depend on which finished first.
fuzz_one() {  # TARGET: runs one target, leaves its exit status in fuzz-logs/TARGET.rc
  local t=$1 rc=0
  local work="$BUILD_DIR/fuzz-work/$t" artifacts="$BUILD_DIR/fuzz-artifacts/$t/"
  local log="$BUILD_DIR/fuzz-logs/$t.log"
  local seeds=("fuzz/corpus/$t")
  [ -d "fuzz/crashes/$t" ] && seeds+=("fuzz/crashes/$t")
  # shellcheck disable=SC2086
  "$BUILD_DIR/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts" ${FUZZ_ARGS:-} \
      "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$BUILD_DIR/fuzz-logs/$t.rc"
}
# backend_bytes runs alone, after the others: it drives a real TLS server over loopback, and its
# harness expects that server to keep pace (on an oversubscribed machine a seed input failed).
parallel=${FUZZ_PARALLEL:-$(nproc)}
for t in $FUZZ_TARGETS; do
  mkdir -p "$BUILD_DIR/fuzz-work/$t" "$BUILD_DIR/fuzz-artifacts/$t/" "$BUILD_DIR/fuzz-logs"
  rm -f "$BUILD_DIR/fuzz-logs/$t.rc"
  [ "$t" = backend_bytes ] && continue
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "== fuzz_$t for ${FUZZ_SECONDS}s"
  fuzz_one "$t" &
done
wait
for t in $FUZZ_TARGETS; do
  if [ "$t" = backend_bytes ]; then
    echo "== fuzz_$t for ${FUZZ_SECONDS}s (alone)"
    fuzz_one "$t"
  fi
done
failed=()
summary=()
for t in $FUZZ_TARGETS; do
  artifacts="$BUILD_DIR/fuzz-artifacts/$t/"
  log="$BUILD_DIR/fuzz-logs/$t.log"
  if [ "$(cat "$BUILD_DIR/fuzz-logs/$t.rc" 2>/dev/null)" = 0 ]; then
    result=ok
  else
    result=FAILED
    failed+=("$t")
    tail -n 60 "$log"
    echo "fuzz_$t: input saved in $artifacts; full log $log"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  summary+=("$(printf '%-14s %-6s runs=%-9s exec/s=%s' "$t" "$result" "${runs:-?}" "${rate:-?}")")
done
printf '%s\n' "${summary[@]}"
# Each target's timed run counts as one: passed when it found nothing.
n_targets=$(wc -w <<<"$FUZZ_TARGETS")
echo "fuzz: $((n_targets - ${#failed[@]})) passed, ${#failed[@]} failed, 0 skipped"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failures in: ${failed[*]}" >&2
  exit 1
fi
