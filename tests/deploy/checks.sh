#!/usr/bin/env bash
# The deploy checks (container image, Helm chart, manifests, alert rules, dashboard), one
# subcommand each, so that ctest can run every check on the real inputs and again on a
# deliberately broken input (see tests/deploy/CMakeLists.txt and expect-failure.sh).
#
#   checks.sh helm-lint CHART [VALUES...]           helm lint --strict, defaults + each values file
#   checks.sh manifests CHART [VALUES...]           helm template | strict offline validation
#   checks.sh validate FILE...                      strict offline validation of manifest files
#   checks.sh render-fails CHART VALUES PATTERN     helm template must fail, saying PATTERN
#   checks.sh chart-config TLSBROKER PKI CHART [VALUES...]
#                                                   the rendered config passes --check-config
#                                                   on every replica ordinal
#   checks.sh config-parity CHART VALUES REFERENCE  the config rendered from VALUES equals the
#                                                   REFERENCE config field by field
#   checks.sh plain-manifests CHART DIR             DIR/tlsbroker.yaml == chart rendering of
#                                                   DIR/values.yaml; rules/dashboard copies equal
#   checks.sh rules RULES TESTS                     promtool check rules + promtool test rules
#   checks.sh runbooks RULES DOC                    every alert's runbook_url is a section of DOC
#   checks.sh dockerfile DOCKERFILE                 dockerfile-utils, dockerfilelint, own rules
#
# Environment: TLSB_DEPLOY_TOOLS = the directory scripts/k8s-tools.sh filled (bin/helm,
# npm/node_modules).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=${TLSB_DEPLOY_TOOLS:?set TLSB_DEPLOY_TOOLS to the scripts/k8s-tools.sh directory}
helm=$tools/bin/helm
node_modules=$tools/npm/node_modules
# Helm keeps caches and repository config in these; keep them out of $HOME.
export HELM_CACHE_HOME=$tools/helm-home/cache HELM_CONFIG_HOME=$tools/helm-home/config \
  HELM_DATA_HOME=$tools/helm-home/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

values_args() { for v in "$@"; do printf -- '-f\n%s\n' "$v"; done; }

cmd=${1:?subcommand}; shift
case "$cmd" in
  helm-lint)
    chart=$1; shift
    "$helm" lint --strict "$chart"
    for v in "$@"; do "$helm" lint --strict "$chart" -f "$v"; done
    ;;

  manifests)
    chart=$1; shift
    "$helm" template tlsbroker "$chart" >"$tmp/default.yaml"
    node "$here/validate-k8s.mjs" "$node_modules" "$tmp/default.yaml"
    for v in "$@"; do
      "$helm" template tlsbroker "$chart" -f "$v" >"$tmp/values.yaml"
      echo "== $v"
      node "$here/validate-k8s.mjs" "$node_modules" "$tmp/values.yaml"
    done
    ;;

  validate)
    node "$here/validate-k8s.mjs" "$node_modules" "$@"
    ;;

  render-fails)
    chart=$1 values=$2 pattern=$3
    if "$helm" template tlsbroker "$chart" -f "$values" >"$tmp/out" 2>&1; then
      echo "FAIL: the chart rendered $values; it should have refused it (expected: $pattern)"
      exit 1
    fi
    cat "$tmp/out"
    if ! grep -Eq -- "$pattern" "$tmp/out"; then
      echo "FAIL: the chart refused $values, but not with a message matching: $pattern"
      exit 1
    fi
    echo "OK: refused as expected"
    ;;

  chart-config)
    # Renders the chart's ConfigMap, points its /etc/tlsbroker paths at a temp dir laid out
    # like the pod's projected volume (test PKI copied under the Secret key names), and runs
    # tlsbroker --check-config for every replica ordinal the chart allows.
    broker=$1 pki=$2 chart=$3; shift 3
    sets=("")
    for v in "$@"; do sets+=("$v"); done
    for v in "${sets[@]}"; do
      args=(); [ -n "$v" ] && args=(-f "$v")
      label=${v:-default values}
      "$helm" template tlsbroker "$chart" "${args[@]}" >"$tmp/all.yaml"
      root="$tmp/etc"; rm -rf "$root"; mkdir -p "$root"
      replicas=$(/usr/bin/python3 - "$tmp/all.yaml" "$root" "$pki" <<'PY'
import os, shutil, sys, yaml
all_path, root, pki = sys.argv[1:]
docs = {d["kind"]: d for d in yaml.safe_load_all(open(all_path)) if d}
cm, sts = docs["ConfigMap"], docs["StatefulSet"]
config = cm["data"]["config.yaml"].replace("/etc/tlsbroker/", root + "/")
open(os.path.join(root, "config.yaml"), "w").write(config)
os.chmod(os.path.join(root, "config.yaml"), 0o440)
# Test PKI file for each Secret key the chart projects.
by_key = {"tls.crt": "ec/client.fullchain.pem", "tls.key": "ec/client.key",
          "tls.key.password": "ec/client.key.pass", "ca.crt": "ec/ca-chain.pem",
          "keystore.p12": "ec/client.p12", "keystore.password": "ec/client.p12.pass"}
listen = {"tls.crt": "ec/server.fullchain.pem", "tls.key": "ec/server.key", "ca.crt": "ec/ca-chain.pem"}
volume = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"][0]
items = [i for s in volume["projected"]["sources"] if "secret" in s for i in s["secret"]["items"]]
# A backend whose Secret has a key password gets the encrypted copy of the key.
encrypted = {os.path.dirname(i["path"]) for i in items if i["key"] == "tls.key.password"}
for item in items:
    key, dest = item["key"], os.path.join(root, item["path"])
    src = (listen if item["path"].startswith("listen/") else by_key).get(key, "ec/int.crl.pem")
    if key == "tls.key" and os.path.dirname(item["path"]) in encrypted:
        src = "ec/client.enc.key"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(os.path.join(pki, src), dest)
    os.chmod(dest, 0o440)  # as the chart's defaultMode, so the broker's permission warnings stay quiet
# Every ordinal that can run: the StatefulSet's replicas, or the autoscaler's maximum.
hpa = docs.get("HorizontalPodAutoscaler")
print(hpa["spec"]["maxReplicas"] if hpa else sts["spec"].get("replicas", 1))
PY
)
      for ((ordinal = 0; ordinal < replicas; ordinal++)); do
        echo "== $label, replica $ordinal"
        "$broker" --check-config "$root/config.yaml" --ordinal "$ordinal"
      done
    done
    ;;

  config-parity)
    chart=$1 values=$2 reference=$3
    "$helm" template tlsbroker "$chart" -f "$values" >"$tmp/rendered.yaml"
    /usr/bin/python3 "$here/config_parity.py" "$tmp/rendered.yaml" "$reference"
    ;;

  plain-manifests)
    chart=$1 dir=$2
    src=$(cd "$here/../.." && pwd)
    rc=0
    "$helm" template tlsbroker "$chart" -f "$dir/values.yaml" --namespace tlsbroker >"$tmp/rendered.yaml"
    { sed -n '1,/^# ---- rendered below/p' "$dir/tlsbroker.yaml"; cat "$tmp/rendered.yaml"; } >"$tmp/expected.yaml"
    if ! diff -u "$dir/tlsbroker.yaml" "$tmp/expected.yaml"; then
      echo "FAIL: $dir/tlsbroker.yaml differs from the chart's rendering; regenerate it with tests/deploy/update-plain-manifests.sh"
      rc=1
    fi
    if ! cmp -s "$src/deploy/prometheus/tlsbroker-rules.yaml" "$chart/files/tlsbroker-rules.yaml"; then
      echo "FAIL: $chart/files/tlsbroker-rules.yaml is not a copy of deploy/prometheus/tlsbroker-rules.yaml"
      rc=1
    fi
    [ $rc -eq 0 ] && echo "OK: plain manifests equal the chart's rendering"
    exit $rc
    ;;

  rules)
    rules=$1 tests=$2
    promtool check rules "$rules"
    promtool test rules "$tests"
    ;;

  runbooks)
    /usr/bin/python3 "$here/check_runbooks.py" "$1" "$2"
    ;;

  dockerfile)
    file=$1
    rc=0
    echo "== dockerfile-utils lint"
    "$node_modules/.bin/dockerfile-utils" lint "$file" || rc=1
    echo "== dockerfilelint (exit code = number of findings)"
    "$node_modules/.bin/dockerfilelint" "$file" || rc=1
    echo "== project rules"
    # The runtime stage is the last one; it must run as a numeric non-root user (runAsNonRoot
    # cannot verify a user name), pin its base, and use exec-form ENTRYPOINT.
    /usr/bin/python3 - "$file" <<'PY' || rc=1
import re, sys
lines = open(sys.argv[1]).read().replace("\\\n", " ").splitlines()
stages, problems = [], []
for line in lines:
    m = re.match(r"\s*(\w+)\s+(.*)", line)
    if not m or line.lstrip().startswith("#"):
        continue
    ins, arg = m.group(1).upper(), m.group(2).strip()
    if ins == "FROM":
        stages.append({"from": arg, "ins": []})
        if re.search(r":latest\b", arg) or (":" not in arg.split()[0] and "@" not in arg.split()[0]
                                           and arg.split()[0] != "scratch"):
            problems.append(f"FROM {arg}: pin the base image tag")
    elif stages:
        stages[-1]["ins"].append((ins, arg))
if not stages:
    problems.append("no FROM")
else:
    final = stages[-1]["ins"]
    users = [a for i, a in final if i == "USER"]
    if not users:
        problems.append("the runtime stage has no USER: it would run as root")
    elif not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]):
        problems.append(f"USER {users[-1]}: use a numeric non-root uid[:gid]")
    eps = [a for i, a in final if i == "ENTRYPOINT"]
    if not eps or not eps[-1].startswith("["):
        problems.append("the runtime stage needs an exec-form ENTRYPOINT (signals reach the broker)")
    if not [a for i, a in final if i == "EXPOSE"]:
        problems.append("the runtime stage declares no ports (EXPOSE)")
    if not [a for i, a in final if i == "LABEL" and "org.opencontainers.image" in a]:
        problems.append("the runtime stage has no OCI labels")
for p in problems:
    print("project rule:", p)
sys.exit(1 if problems else 0)
PY
    [ $rc -eq 0 ] && echo "OK: $file passes the Dockerfile checks"
    exit $rc
    ;;

  *)
    echo "unknown check: $cmd" >&2
    exit 2
    ;;
esac
