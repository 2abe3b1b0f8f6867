#!/usr/bin/env bash
# Makes debian:bookworm-slim available to buildah on a machine that cannot reach a container
# registry (only a Debian mirror): bootstraps a minimal bookworm root filesystem with debootstrap
# and imports it under the tag the Dockerfile names, so `buildah bud --pull=never` finds it.
# Does nothing when the tag already exists. Needs root, buildah and debootstrap.
# Usage: scripts/container-base-image.sh [MIRROR]
set -euo pipefail
mirror=${1:-http://deb.debian.org/debian}
tag=docker.io/library/debian:bookworm-slim

if buildah inspect --type image "$tag" >/dev/null 2>&1; then
  echo "container-base-image: $tag already present"
  exit 0
fi
work=$(mktemp -d /tmp/tlsb-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "container-base-image: debootstrap bookworm from $mirror (about 30 s)"
if ! debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -20 "$work/debootstrap.log" >&2
  exit 1
fi
# Keep the image as small as the official slim one: no downloaded .debs, no package lists.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
mkdir "$work/context"
tar -C "$work/rootfs" -cf "$work/context/rootfs.tar" .
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$work/context/Dockerfile"
buildah bud --quiet --pull=never -t "$tag" "$work/context" >/dev/null
echo "container-base-image: imported $tag"
