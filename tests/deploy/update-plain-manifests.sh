#!/usr/bin/env bash
# Regenerates deploy/kubernetes/tlsbroker.yaml from the chart and deploy/kubernetes/values.yaml,
# and helm/tlsbroker/files/tlsbroker-rules.yaml from deploy/prometheus/tlsbroker-rules.yaml.
#   tests/deploy/update-plain-manifests.sh TOOLS_DIR     (the scripts/k8s-tools.sh directory)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
tools=${1:?usage: update-plain-manifests.sh TOOLS_DIR}
export HELM_CACHE_HOME=$tools/helm-home/cache HELM_CONFIG_HOME=$tools/helm-home/config \
  HELM_DATA_HOME=$tools/helm-home/data
cp "$src/deploy/prometheus/tlsbroker-rules.yaml" "$src/helm/tlsbroker/files/tlsbroker-rules.yaml"
out=$src/deploy/kubernetes/tlsbroker.yaml
{
  cat <<'HEAD'
# tlsbroker for clusters without Helm: the chart helm/tlsbroker rendered with
# deploy/kubernetes/values.yaml (release "tlsbroker"). Do not edit: regenerate with
# tests/deploy/update-plain-manifests.sh; a test checks that this file equals the rendering.
#
#   kubectl create namespace tlsbroker
#   kubectl -n tlsbroker create secret generic tlsbroker-server \
#     --from-file=tls.crt=server.fullchain.pem --from-file=tls.key=server.key --from-file=ca.crt=callers-ca.pem
#   kubectl -n tlsbroker create secret generic tlsbroker-backend-ims \
#     --from-file=ca.crt=ims-ca.pem --from-file=tls.crt=client.fullchain.pem --from-file=tls.key=client.key
#   kubectl -n tlsbroker apply -f deploy/kubernetes/tlsbroker.yaml
# ---- rendered below
HEAD
  "$tools/bin/helm" template tlsbroker "$src/helm/tlsbroker" -f "$src/deploy/kubernetes/values.yaml" --namespace tlsbroker
} >"$out"
echo "wrote $out"
