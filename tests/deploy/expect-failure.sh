#!/usr/bin/env bash
# Runs a check on a deliberately broken input and passes only if the check fails AND says why
# (its output matches PATTERN), so a check that fails for an unrelated reason (a missing tool,
# a typo in the test) does not count as "caught".
#   expect-failure.sh PATTERN COMMAND [ARGS...]
set -uo pipefail
pattern=$1; shift
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out"
if [ $rc -eq 0 ]; then
  echo "EXPECTED FAILURE: the check passed on broken input: $*"
  exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$out"; then
  echo "EXPECTED FAILURE: the check failed (rc $rc) but its output does not match: $pattern"
  exit 1
fi
echo "OK: the check rejected the broken input (rc $rc) with the expected message"
