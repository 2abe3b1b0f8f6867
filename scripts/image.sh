#!/usr/bin/env bash
# Builds the tlsbroker container image from the Dockerfile (`make image`).
#
#   scripts/image.sh [TAG]        default TAG: tlsbroker:<version>-<commit>, also tagged tlsbroker:dev
#
#   IMAGE_FROM_SOURCE=1  compile inside the Dockerfile's build stage (the way CI systems with a
#                        Docker engine build it; needs the Debian mirror from the build). Default:
#                        build tlsbroker and tlsbrokerctl here first (scripts/build.sh, so a
#                        rebuild is incremental) and hand them to the Dockerfile as prebuilt
#                        binaries; the runtime stage is the same either way. Prebuilt binaries
#                        are only right on Debian bookworm, the image's base, so elsewhere the
#                        default is IMAGE_FROM_SOURCE=1.
#   IMAGE_TOOL=docker|buildah  default: docker when its engine answers, else buildah (no engine
#                        needed; on a machine without registry access the debian:bookworm-slim
#                        base is bootstrapped from the Debian mirror by
#                        scripts/container-base-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

version=$(sed -n 's/^project(tlsbroker VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
tag=${1:-tlsbroker:${version}-${commit}}
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)

tool=${IMAGE_TOOL:-}
if [ -z "$tool" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then tool=docker; else tool=buildah; fi
fi
if [ "$tool" = buildah ] && ! command -v buildah >/dev/null; then
  bash scripts/install-deps.sh  # Installs buildah and debootstrap.
fi

from_source=${IMAGE_FROM_SOURCE:-}
if [ -z "$from_source" ]; then
  from_source=1
  if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then from_source=0; fi
fi

ctx=$src
args=(--build-arg "GIT_COMMIT=$commit" --build-arg "CREATED=$created")
if [ "$from_source" = 0 ]; then
  echo "== building tlsbroker and tlsbrokerctl here (scripts/build.sh), then the image with $tool"
  BUILD_TARGET="tlsbroker tlsbrokerctl" bash scripts/build.sh build
  # A small context: the Dockerfile, .dockerignore and the two stripped binaries.
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp Dockerfile .dockerignore "$ctx/"
  mkdir -p "$ctx/prebuilt"
  strip --strip-debug -o "$ctx/prebuilt/tlsbroker" build/services/tlsbroker
  strip --strip-debug -o "$ctx/prebuilt/tlsbrokerctl" build/tools/tlsbrokerctl/tlsbrokerctl
  args+=(--build-arg TLSBROKER_PREBUILT=prebuilt/tlsbroker
         --build-arg TLSBROKERCTL_PREBUILT=prebuilt/tlsbrokerctl)
else
  echo "== building the image with $tool, compiling inside its build stage (several minutes)"
fi

if [ "$tool" = docker ]; then
  docker build "${args[@]}" -t "$tag" -t tlsbroker:dev "$ctx"
else
  if ! buildah inspect --type image docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
    # Try the registry first; without one, bootstrap the base from the Debian mirror.
    buildah pull docker.io/library/debian:bookworm-slim >/dev/null 2>&1 ||
      bash scripts/container-base-image.sh
  fi
  buildah bud --quiet --pull=never --isolation chroot "${args[@]}" -t "$tag" -t tlsbroker:dev "$ctx" >/dev/null
fi
echo "== image $tag (also tlsbroker:dev), built with $tool"
if [ "$tool" = docker ]; then
  echo "   try it: docker run --rm $tag --version"
else
  echo "   export it: buildah push $tag oci-archive:tlsbroker.tar (or docker-archive:, or a registry)"
fi
