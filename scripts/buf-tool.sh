#!/usr/bin/env bash
# Installs buf (the protobuf linter and breaking-change checker) for the API checks (tests/api)
# into DIR/bin/buf, at an exact version, from the npm registry (the only registry reachable
# besides Debian's): @bufbuild/buf-linux-x64 ships the static binary; the tarball is checked
# against its sha512. Re-runs are offline: skipped when the stamp matches.
# Usage: scripts/buf-tool.sh DIR
set -euo pipefail
dir=${1:?usage: buf-tool.sh DIR}
mkdir -p "$dir/bin"
dir=$(cd "$dir" && pwd)
export npm_config_cache="$dir/npm-cache"  # Not the user's ~/.npm.

buf_pkg=@bufbuild/buf-linux-x64@1.75.0
buf_tgz_sha512=YGGJAx0lpMCE7aMWjNOJcfoEaG/e+iYHnTC4SZ0P5eS4IffMryA9Z4/bb1m1wNXAEJ8ATFMEZOAk/5x9VE47ig==
buf_version=1.75.0

if [ "$(uname -m)" != x86_64 ]; then
  echo "buf-tool: only x86_64 is pinned here (this machine is $(uname -m))" >&2
  exit 1
fi
if [ "$(cat "$dir/bin/.buf-stamp" 2>/dev/null)" != "$buf_pkg $buf_tgz_sha512" ]; then
  work=$(mktemp -d "$dir/.buf-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "buf-tool: fetching $buf_pkg"
  (cd "$work" && npm pack --silent "$buf_pkg" >/dev/null)
  tgz=$(ls "$work"/*.tgz)
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "$buf_tgz_sha512" ]; then
    echo "buf-tool: $buf_pkg has sha512 $got, expected $buf_tgz_sha512" >&2
    exit 1
  fi
  tar -xzf "$tgz" -C "$work" package/bin/buf
  install -m 0755 "$work/package/bin/buf" "$dir/bin/buf"
  rm -rf "$work"
  trap - EXIT
  echo "$buf_pkg $buf_tgz_sha512" >"$dir/bin/.buf-stamp"
fi
got_version=$("$dir/bin/buf" --version)
if [ "$got_version" != "$buf_version" ]; then
  echo "buf-tool: buf is $got_version, expected $buf_version" >&2
  exit 1
fi
echo "buf-tool: buf $buf_version ready in $dir/bin"
