#!/usr/bin/env bash
# Builds the container image from the real Dockerfile with buildah (no Docker engine) and runs
# `tlsbroker --version`, `tlsbroker --check-config` and `tlsbrokerctl --version` inside it as
# the image's user, and checks the OCI revision and created labels.
#   image-smoke-test.sh SOURCE_DIR TLSBROKER_BINARY TLSBROKERCTL_BINARY PKI_DIR
# The build context is the Dockerfile and .dockerignore plus the already built (and stripped)
# binaries, passed as TLSBROKER_PREBUILT/TLSBROKERCTL_PREBUILT so the image build skips the
# compile and its -dev packages; the runtime stage is built exactly as in a release.
# scripts/install-deps.sh installs buildah and debootstrap; only a machine without buildah skips
# (exit 77, printed as a skip). Anything else that stops the image from being built, such as no
# base image, fails.
set -euo pipefail
src=$1 binary=$2 ctl_binary=$3 pki=$4
if ! command -v buildah >/dev/null; then
  echo "SKIPPED: buildah is not installed (scripts/install-deps.sh installs it); the Dockerfile lint still ran"
  exit 77
fi
if ! buildah inspect --type image docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
  bash "$src/scripts/container-base-image.sh" || {
    echo "FAIL: no debian:bookworm-slim base image and scripts/container-base-image.sh could not make one"
    exit 1
  }
fi
ctx=$(mktemp -d)
tag=localhost/tlsbroker:smoke-$$
container=""
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  buildah rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT
cp "$src/Dockerfile" "$src/.dockerignore" "$ctx/"
mkdir -p "$ctx/prebuilt" "$ctx/smoke/pki"
# Stripped as the build stage strips them.
strip --strip-debug -o "$ctx/prebuilt/tlsbroker" "$binary"
strip --strip-debug -o "$ctx/prebuilt/tlsbrokerctl" "$ctl_binary"
buildah bud --quiet --pull=never --isolation chroot \
  --build-arg TLSBROKER_PREBUILT=prebuilt/tlsbroker \
  --build-arg TLSBROKERCTL_PREBUILT=prebuilt/tlsbrokerctl \
  --build-arg GIT_COMMIT=0123456789ab --build-arg CREATED=2026-01-02T03:04:05Z \
  -t "$tag" "$ctx" >/dev/null
label() { buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$1\"}}" "$tag"; }
[ "$(label org.opencontainers.image.revision)" = 0123456789ab ] || {
  echo "FAIL: image label revision is '$(label org.opencontainers.image.revision)'"; exit 1; }
[ "$(label org.opencontainers.image.created)" = 2026-01-02T03:04:05Z ] || {
  echo "FAIL: image label created is '$(label org.opencontainers.image.created)'"; exit 1; }
container=$(buildah from --pull=never "$tag")
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")
echo "image user: $user"
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || { echo "FAIL: image user $user is not numeric non-root"; exit 1; }
version=$(buildah run --isolation chroot --user "$user" "$container" -- /usr/local/bin/tlsbroker --version)
echo "$version"
[[ "$version" == tlsbroker* ]] || { echo "FAIL: unexpected --version output"; exit 1; }
# A config with the test PKI, copied into the container where the chart mounts things.
mnt=$(buildah mount "$container")
mkdir -p "$mnt/etc/tlsbroker/listen" "$mnt/etc/tlsbroker/backends/ims"
cp "$pki/ec/server.fullchain.pem" "$mnt/etc/tlsbroker/listen/tls.crt"
cp "$pki/ec/server.key" "$mnt/etc/tlsbroker/listen/tls.key"
cp "$pki/ec/ca-chain.pem" "$mnt/etc/tlsbroker/listen/ca.crt"
cp "$pki/ec/ca-chain.pem" "$mnt/etc/tlsbroker/backends/ims/ca.crt"
cat >"$mnt/etc/tlsbroker/config.yaml" <<'YAML'
listen:
  grpc: 0.0.0.0:7443
  metrics: 0.0.0.0:9464
  tls: {cert: /etc/tlsbroker/listen/tls.crt, key: /etc/tlsbroker/listen/tls.key, client_ca: /etc/tlsbroker/listen/ca.crt}
backends:
  - name: ims
    address: ims.example.internal:9999
    tls: {ca: /etc/tlsbroker/backends/ims/ca.crt}
    client_id: {prefix: "T{ordinal}A"}
    allowed_callers: ["spiffe://cluster.local/ns/payments/sa/*"]
YAML
chown -R "${user%%:*}:${user##*:}" "$mnt/etc/tlsbroker"
chmod -R go-w "$mnt/etc/tlsbroker"
buildah umount "$container" >/dev/null
buildah run --isolation chroot --user "$user" "$container" -- \
  /usr/local/bin/tlsbroker --check-config /etc/tlsbroker/config.yaml --ordinal 3
# The `helm test` Pod runs tlsbrokerctl from this image.
ctl_version=$(buildah run --isolation chroot --user "$user" "$container" -- /usr/local/bin/tlsbrokerctl --version)
echo "$ctl_version"
[[ "$ctl_version" == tlsbrokerctl* ]] || { echo "FAIL: unexpected tlsbrokerctl --version output"; exit 1; }
echo "OK: the image runs tlsbroker --version and --check-config, and tlsbrokerctl, as $user"
