#!/usr/bin/env bash
# Fetch the Go sources of hashicorp/memberlist 0.5.0 (the release MetalLB speakers pin) for
# the interop tests: Debian trixie's arch-independent golang-github-hashicorp-memberlist-dev,
# downloaded with apt from the mirror this machine already uses, into the repo's .cache/.
#
# Nothing is installed and /etc is untouched: apt runs with a private sources list, state and
# cache under .cache/apt-trixie/, and the package is unpacked with `dpkg -x` into
# .cache/memberlist-0.5.0/ (a GOPATH tree: usr/share/gocode). Its dependencies (go-msgpack
# 0.5.5, the only one that shapes the wire, plus go-metrics, go-multierror, go-sockaddr,
# btree, miekg/dns) come from bookworm's /usr/share/gocode, which install-deps.sh provides.
#
# Never fails the caller: when the download is impossible it says why on stderr and in
# .cache/memberlist-0.5.0.unavailable, and the 0.5.0 interop tests skip with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."
DEB_VERSION=0.5.0-1
PKG=golang-github-hashicorp-memberlist-dev
SUITE=trixie
OUT=.cache/memberlist-0.5.0
MARK=.cache/memberlist-0.5.0.unavailable
APT=.cache/apt-trixie
SRC=$OUT/usr/share/gocode/src/github.com/hashicorp/memberlist

[ -f "$SRC/label.go" ] && exit 0

unavailable() {
  mkdir -p .cache
  echo "memberlist $DEB_VERSION from Debian $SUITE unavailable: $*" | tee "$MARK" >&2
  rm -rf "$APT"
  exit 0
}

command -v apt-get >/dev/null || unavailable "no apt-get on this machine"
command -v dpkg >/dev/null || unavailable "no dpkg on this machine"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$KEYRING" ] || unavailable "no $KEYRING (package debian-archive-keyring)"

rm -rf "$APT" "$MARK"
mkdir -p "$APT/etc/sources.list.d" "$APT/etc/preferences.d" "$APT/state/lists/partial" \
  "$APT/cache/archives/partial" "$APT/debs" "$APT/probe/lists/partial"

# The Debian mirror this machine is configured with: the one serving its own release.
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
MIRROR=$(apt-get -o Dir::State="$PWD/$APT/probe" -o Debug::NoLocking=1 update --print-uris \
  2>/dev/null | sed -n "s|^'\(.*\)/dists/${CODENAME:-none}/InRelease'.*|\1|p" | head -n1)
[ -n "$MIRROR" ] || unavailable "no Debian mirror for '${CODENAME:-?}' in the apt sources"
: >"$APT/state/status"
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$APT/etc/sources.list"
opts=(
  -o Dir::Etc::SourceList="$PWD/$APT/etc/sources.list"
  -o Dir::Etc::SourceParts="$PWD/$APT/etc/sources.list.d"
  -o Dir::Etc::Preferences="$PWD/$APT/etc/preferences"
  -o Dir::Etc::PreferencesParts="$PWD/$APT/etc/preferences.d"
  -o Dir::State="$PWD/$APT/state"
  -o Dir::State::status="$PWD/$APT/state/status"
  -o Dir::Cache="$PWD/$APT/cache"
  -o Debug::NoLocking=1
  -o APT::Sandbox::User="$(id -un)"
  -o Acquire::Languages=none
  -o Acquire::Retries=2
  -o Acquire::http::Timeout=30
  -q
)
log=$APT/apt.log
timeout 240 apt-get "${opts[@]}" update >"$log" 2>&1 \
  || unavailable "apt-get update of $SUITE failed: $(tail -n 3 "$log" | tr '\n' ' ')"
(cd "$APT/debs" && timeout 240 apt-get "${opts[@]}" download "$PKG=$DEB_VERSION") >>"$log" 2>&1 \
  || unavailable "apt-get download $PKG=$DEB_VERSION failed: $(tail -n 3 "$log" | tr '\n' ' ')"
deb=$(ls "$APT"/debs/*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || unavailable "apt-get download left no .deb"
rm -rf "$OUT.tmp"
dpkg -x "$deb" "$OUT.tmp" || unavailable "dpkg -x $deb failed"
[ -f "$OUT.tmp/${SRC#"$OUT"/}/label.go" ] || unavailable "$deb holds no memberlist sources"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
rm -rf "$APT"
echo "fetch-memberlist: memberlist $DEB_VERSION sources in $OUT" >&2
