#!/usr/bin/env bash
# Build (once) the Debian bookworm base of both images with mmdebstrap, from Debian's archive
# alone, and print its name. No container registry is needed: the rootfs tarball is
# `podman import`ed.
#
#   scripts/image/base.sh
#
# It holds python3 with its venv module and CA certificates (l2agent's virtual environment
# is made on it), and Debian's frr and frr-pythontools: the FRR sidecar image runs their
# daemons, and the speaker (BGP mode) runs their vtysh and frr-reload.py against them. One
# base, so both images agree on FRR's version and on its groups' IDs (frrvty is 102: the
# speaker DaemonSet's supplementalGroups).
#
# The image is tagged with a content key: the hash of the exact mmdebstrap command line, so
# a second run (same recipe) finds it and does nothing, and a changed recipe builds anew.
# Downloaded .deb files are kept in .cache/image/debs (apt checks them against the archive's
# signed indices), so a changed recipe downloads only what is new.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
podman=$repo/scripts/image/podman
cache=$repo/.cache/image
suite=bookworm

name=localhost/l2agent-base
include=python3,python3-venv,ca-certificates,frr,frr-pythontools

# The recipe: everything that decides what goes into the rootfs (and so the content key).
recipe=(
  --variant=minbase "--include=$include"
  --aptopt='APT::Install-Recommends "false"'
  # /usr merged as Debian bookworm has it (minbase would leave it split).
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  # No manuals, translations or docs (licences stay).
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  "$suite"
)
key=$(printf '%s\n' "${recipe[@]}" | sha256sum | cut -c1-16)
image=$name:$key

if "$podman" image exists "$image"; then
  echo "$image"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "base.sh: mmdebstrap needs root to build $image" >&2
  exit 1
fi

mkdir -p "$cache/debs" "$cache/tmp"
tar=$(mktemp -p "$cache/tmp" "base-XXXXXX.tar")
trap 'rm -f "$tar"' EXIT
speed=()
# eatmydata (when installed) skips dpkg's fsyncs: a third faster, same result.
[ -x /usr/bin/eatmydata ] && speed+=(--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata)
echo "base.sh: building $image with mmdebstrap (${include})" >&2
start=$SECONDS
# Timestamps in the tarball come from the last commit of this recipe, not from the clock.
SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct -- scripts/image/base.sh 2>/dev/null || true)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
mmdebstrap --quiet "${speed[@]}" \
  --skip=download/empty --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $cache/debs /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $cache/debs" \
  "${recipe[@]}" "$tar" 2> >(grep -v -e libeatmydata1 -e "local diversion of /usr/bin/dpkg" >&2)
"$podman" import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' \
  --change "LABEL io.l2agent.base.recipe=\"mmdebstrap ${recipe[*]}\"" \
  --change "LABEL io.l2agent.base.key=$key" \
  "$tar" "$image" >/dev/null
echo "base.sh: $image in $((SECONDS - start)) s" >&2
# Older bases of this name (a previous recipe) are no longer used.
"$podman" images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$name" |
  grep -v -x -F "$image" | xargs -r "$podman" rmi --force >/dev/null 2>&1 || true
echo "$image"
