#!/usr/bin/env bash
# Install the Debian packages the tests, the lab and the benchmarks use, only when missing.
# Runs as root in CI; elsewhere it says what is missing and carries on (tests that need a
# missing tool skip and say why).
set -euo pipefail
pkgs=(iproute2 iputils-arping ndisc6 tcpdump keepalived golang-go
      golang-github-hashicorp-memberlist-dev prometheus netsniff-ng procps iptables
      # BGP mode: FRR on the nodes (frr-reload.py from frr-pythontools), BIRD and GoBGP as routers
      frr frr-pythontools bird2 gobgpd
      # the image: built and run without any container registry (eatmydata: faster mmdebstrap)
      podman buildah runc mmdebstrap eatmydata)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root, cannot install: ${missing[*]} (tests needing them will skip)" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
