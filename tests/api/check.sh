#!/usr/bin/env bash
# The API checks: buf lint and buf breaking on proto/.
#   check.sh lint [MODULE_ROOT]        buf lint (rules in MODULE_ROOT/buf.yaml; default: the repo)
#   check.sh breaking [PROTO_ROOT]     buf breaking of PROTO_ROOT (default: the repo) against
#                                      the released v1 API (tests/api/tlsbroker-api-v1.json)
#   check.sh breaking-without FIELD    the same, on a copy of the repo's protos with the line
#                                      declaring FIELD deleted (proves the check catches it)
#   check.sh snapshot                  rewrites tests/api/tlsbroker-api-v1.json (only when a
#                                      new major version of the API is released)
# Environment: TLSB_API_TOOLS = the directory scripts/buf-tool.sh filled (bin/buf).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
buf=${TLSB_API_TOOLS:?set TLSB_API_TOOLS to the scripts/buf-tool.sh directory}/bin/buf
v1="$src/tests/api/tlsbroker-api-v1.json"
# buf's module cache stays in a temporary directory: a check changes nothing outside it.
BUF_CACHE_DIR=$(mktemp -d)
export BUF_CACHE_DIR
trap 'rm -rf "$BUF_CACHE_DIR"' EXIT

case ${1:?usage: check.sh lint|breaking|breaking-without|snapshot} in
  lint)
    cd "${2:-$src}"
    "$buf" lint
    echo "buf lint: clean"
    ;;
  breaking)
    cd "${2:-$src}"
    "$buf" breaking --against "$v1"
    echo "buf breaking: no breaking change against the v1 API"
    ;;
  breaking-without)
    field=${2:?which field}
    copy="$BUF_CACHE_DIR/repo"
    mkdir -p "$copy"
    cp -r "$src/buf.yaml" "$src/proto" "$copy/"
    grep -rl -- " $field = " "$copy/proto" | head -1 | xargs sed -i "/ $field = /d"
    "$0" breaking "$copy"
    ;;
  snapshot)
    cd "$src"
    # Without comments, one field per line: a later diff of the snapshot is readable.
    "$buf" build --exclude-source-info -o -#format=json |
      python3 -c 'import json, sys; json.dump(json.load(sys.stdin), sys.stdout, indent=1)' >"$v1"
    echo "wrote $v1"
    ;;
  *)
    echo "check.sh: unknown check '$1'" >&2
    exit 2
    ;;
esac
