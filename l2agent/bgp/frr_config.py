"""A node's BGP plan as one frr.conf, shaped like MetalLB's FRR mode (pure, deterministic).

What MetalLB's templates (`internal/bgp/frr/templates/`) render, kept here:

- one `router bgp ASN [vrf V]` per (myASN, routerID, VRF) with `no bgp ebgp-requires-policy`,
  `no bgp network import-check`, `no bgp default ipv4-unicast`,
  `bgp graceful-restart preserve-fw-state`, `bgp router-id`, and per address family the
  peers that carry it and the announced prefixes as `network` lines;
- per peer: `remote-as`, `ebgp-multihop`, `local-as`, `port`, `timers KA HOLD`,
  `timers connect`, `password`, `update-source`, `graceful-restart`, `bfd` + `bfd profile`,
  `disable-connected-check` for single-hop IPv6 eBGP; the peer activated in each family it
  carries with an `-in` route-map that rejects every route the peer sends and an `-out`
  route-map that lets out only the prefixes planned for it (prefix lists
  `<peer>-allowed-ipv4/6`), setting LOCAL_PREF and (large) communities per prefix through
  earlier entries with `on-match next`;
- a `bfd` block with every BFDProfile.

Where l2agent differs, and why:

- `bgp graceful-restart-disable` in every router, and `neighbor X graceful-restart` for the
  peers that ask for it (FRR lets the peer's setting override the router's). FRR's default
  helper mode advertises the capability even without `neighbor X graceful-restart`, and a
  router that honours it (BIRD by default) keeps a dead node's routes for 120 s (measured).
  The router-wide line never changes, so adding or removing a peer without graceful restart
  is a plain reload; the per-neighbour `graceful-restart-disable` would make every new peer
  hit frr-reload's graceful-restart quirk (exit 1 after applying; measured on FRR 8.4).
- LOCAL_PREF is set for iBGP sessions only: BGP never sends it over eBGP, so the line would
  only be noise in the config and in frr-reload's diffs.
- IP forwarding: `frr-reload.py --reload` switches it *on* when the file does not say
  `no ip forwarding` (zebra shows only the off state, and the reload deletes that line). A
  Kubernetes node already forwards IPv4, but not necessarily IPv6, and turning IPv6
  forwarding on makes Linux ignore router advertisements (a SLAAC node loses its default
  route). So the caller says what the node has (`Forwarding`, read from /proc by the
  speaker) and an off state is written down: FRR never changes the node's forwarding. None
  or True write nothing (MetalLB's file, and FRR's own normal form for "on").
- `hostname` is the host's own name, given by the caller (`socket.gethostname()`, what
  zebra shows): FRR's running config always names the host, so any other line, or none,
  is a difference frr-reload finds on every reload. MetalLB writes `os.Hostname()` too.
- The text is written as FRR writes its running configuration back (checked against FRR
  8.4): blocks end with `exit`, well-known communities by name (`no-export`, not
  `65535:65281`), `ebgp-multihop 255`, and defaults left out (`port 179`, BFD's 300 ms / x3 /
  echo 50 ms / TTL 254). So `frr-reload.py` finds nothing to change when nothing changed.

`redact(text)` hides passwords for logs and for `l2agent plan --frr`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from l2agent.bgp.plan import BgpPlan, Route, Session, network_key
from l2agent.model.bgp import BFDProfile, BGPPeer
from l2agent.model.community import BGPCommunity
from l2agent.model.crds import Network

__all__ = ["Forwarding", "FrrOptions", "frr_community", "redact", "render"]

_FAMILIES = (4, 6)
DEFAULT_PORT = 179
#: FRR's BFD profile defaults (bfdd): shown by nobody, so left out of the file.
_BFD_DEFAULTS = {
    "receive-interval": 300,
    "transmit-interval": 300,
    "detect-multiplier": 3,
    "echo-interval": 50,
    "minimum-ttl": 254,
}
#: How FRR 8.4 prints well-known standard communities (bgpd's `community_com2str`).
_WELL_KNOWN = {
    0x00000000: "internet",
    0xFFFF0000: "graceful-shutdown",
    0xFFFF0001: "accept-own",
    0xFFFF0002: "route-filter-translated-v4",
    0xFFFF0003: "route-filter-v4",
    0xFFFF0004: "route-filter-translated-v6",
    0xFFFF0005: "route-filter-v6",
    0xFFFF0006: "llgr-stale",
    0xFFFF0007: "no-llgr",
    0xFFFF0008: "accept-own-nexthop",
    0xFFFF029A: "blackhole",
    0xFFFFFF01: "no-export",
    0xFFFFFF02: "no-advertise",
    0xFFFFFF03: "local-AS",
    0xFFFFFF04: "no-peer",
}


def frr_community(c: BGPCommunity) -> str:
    """A community as FRR prints it: a well-known name, or `A:B` / `A:B:C`."""
    if not c.is_large:
        name = _WELL_KNOWN.get((c.parts[0] << 16) | c.parts[1])
        if name is not None:
            return name
    return str(c)


@dataclass(frozen=True, slots=True)
class Forwarding:
    """The node's IP forwarding, repeated in frr.conf so a reload keeps it (None: say nothing)."""

    ipv4: bool | None = None
    ipv6: bool | None = None


@dataclass(frozen=True, slots=True)
class FrrOptions:
    """What frr.conf needs beyond the plan.

    `hostname`: the host's name as FRR sees it (`socket.gethostname()`; None writes no
    `hostname` line). `log_level`: FRR's level for `log stdout` (None: no log lines, e.g.
    when the daemons log to files).
    """

    hostname: str | None = None
    log_level: str | None = "informational"
    forwarding: Forwarding = Forwarding()


def _ip_word(version: int) -> str:
    """FRR's keyword for a family: `ip` or `ipv6`."""
    return "ip" if version == 4 else "ipv6"


def _af(version: int) -> str:
    return "ipv4 unicast" if version == 4 else "ipv6 unicast"


def _neighbor(peer: BGPPeer) -> str:
    """How FRR names the neighbor: its address, or the interface for unnumbered peering."""
    return str(peer.address) if peer.address is not None else str(peer.interface)


@dataclass(slots=True)
class _Lists:
    """Allocates route-map entry numbers and prefix-list sequence numbers (MetalLB's
    `counter`: 1, 2, 3 ... per name)."""

    counters: dict[str, int]

    def next(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]


def _prefix_list(lists: _Lists, name: str, version: int, prefixes: Iterable[Network]) -> list[str]:
    return [
        f"{_ip_word(version)} prefix-list {name} seq {lists.next(name)} permit {p}"
        for p in sorted(prefixes, key=network_key)
    ]


def _set_entry(lists: _Lists, rmap: str, plist: str, version: int, action: str) -> list[str]:
    return [
        f"route-map {rmap} permit {lists.next(rmap)}",
        f" match {_ip_word(version)} address prefix-list {plist}",
        f" {action}",
        " on-match next",
        "exit",
    ]


def _community_name(peer_id: str, c: BGPCommunity, version: int) -> str:
    large = "large:" if c.is_large else ""
    return f"{peer_id}-{large}{c}-{_ip_word(version)}-community-prefixes"


def _peer_filters(session: Session, routes: Sequence[Route]) -> list[str]:
    """The `-in` (reject all) and `-out` route-maps and prefix lists of one peer."""
    pid = session.peer.peer_id
    rmap_out = f"{pid}-out"
    lists = _Lists({})
    out = [f"route-map {pid}-in deny 20", "exit"]
    for version in _FAMILIES:
        fam = [r for r in routes if r.prefix.version == version]
        by_pref: dict[int, list[Network]] = {}
        for r in fam:
            if r.local_pref is not None:
                by_pref.setdefault(r.local_pref, []).append(r.prefix)
        for pref in sorted(by_pref):
            name = f"{pid}-{pref}-{_ip_word(version)}-localpref-prefixes"
            out += _prefix_list(lists, name, version, by_pref[pref])
            out += _set_entry(lists, rmap_out, name, version, f"set local-preference {pref}")
        by_comm: dict[BGPCommunity, list[Network]] = {}
        for r in fam:
            for c in r.communities:
                by_comm.setdefault(c, []).append(r.prefix)
        for c in sorted(by_comm, key=lambda c: c.sort_key):
            name = _community_name(pid, c, version)
            out += _prefix_list(lists, name, version, by_comm[c])
            action = f"set {c.kind.value} {frr_community(c)} additive"
            out += _set_entry(lists, rmap_out, name, version, action)
    for version in _FAMILIES:
        name = f"{pid}-allowed-ipv{version}"
        prefixes = [r.prefix for r in routes if r.prefix.version == version]
        if prefixes:
            out += _prefix_list(lists, name, version, prefixes)
        else:
            out.append(f"{_ip_word(version)} prefix-list {name} seq {lists.next(name)} deny any")
    for version in _FAMILIES:
        out += [
            f"route-map {rmap_out} permit {lists.next(rmap_out)}",
            f" match {_ip_word(version)} address prefix-list {pid}-allowed-ipv{version}",
            "exit",
        ]
    return out


def _disable_connected_check(peer: BGPPeer) -> bool:
    """MetalLB's `mustDisableConnectedCheck`: single-hop eBGP to an IPv6 address whose
    session carries IPv6 only (FRR would otherwise refuse a peer outside its subnets)."""
    if peer.interface is not None or peer.families != frozenset({6}):
        return False
    return not peer.ebgp_multihop and not peer.is_ibgp


def _timers(peer: BGPPeer) -> list[str]:
    n = _neighbor(peer)
    out = []
    if peer.hold_time is not None and peer.keepalive_time is not None:
        out.append(f" neighbor {n} timers {int(peer.keepalive_time)} {int(peer.hold_time)}")
    if peer.connect_time is not None:
        out.append(f" neighbor {n} timers connect {peer.connect_time}")
    return out


def _session_lines(session: Session) -> list[str]:
    peer = session.peer
    n = _neighbor(peer)
    if peer.interface is not None:
        out = [f" neighbor {n} interface remote-as {peer.remote_as}"]
    else:
        out = [f" neighbor {n} remote-as {peer.remote_as}"]
    if peer.ebgp_multihop:
        out.append(f" neighbor {n} ebgp-multihop 255")
    if peer.local_asn is not None:
        out.append(f" neighbor {n} local-as {peer.local_asn} no-prepend replace-as")
    if peer.port != DEFAULT_PORT:
        out.append(f" neighbor {n} port {peer.port}")
    out += _timers(peer)
    if peer.password is not None:
        out.append(f" neighbor {n} password {peer.password.reveal()}")
    if peer.source_address is not None:
        out.append(f" neighbor {n} update-source {peer.source_address}")
    if peer.enable_graceful_restart:
        out.append(f" neighbor {n} graceful-restart")
    if peer.bfd_profile is not None:
        out.append(f" neighbor {n} bfd")
        out.append(f" neighbor {n} bfd profile {peer.bfd_profile}")
    if _disable_connected_check(peer):
        out.append(f" neighbor {n} disable-connected-check")
    return out


def _family_block(
    version: int, sessions: Sequence[Session], prefixes: Sequence[Network]
) -> list[str]:
    """One `address-family` block: every peer carrying the family, then its `network`s."""
    out: list[str] = []
    for s in sessions:
        if version in s.peer.families:
            n, pid = _neighbor(s.peer), s.peer.peer_id
            out += [
                f"  neighbor {n} activate",
                f"  neighbor {n} route-map {pid}-in in",
                f"  neighbor {n} route-map {pid}-out out",
            ]
    out += [f"  network {p}" for p in prefixes if p.version == version]
    if not out:
        return []
    return [f" address-family {_af(version)}", *out, " exit-address-family"]


def _router(
    key: tuple[int, str | None, str | None], sessions: Sequence[Session], plan: BgpPlan
) -> list[str]:
    my_asn, router_id, vrf = key
    names = {s.name for s in sessions}
    out = [f"router bgp {my_asn}" + (f" vrf {vrf}" if vrf else "")]
    out += [
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        " no bgp default ipv4-unicast",
        " bgp graceful-restart preserve-fw-state",
        " bgp graceful-restart-disable",
    ]
    if router_id is not None:
        out.append(f" bgp router-id {router_id}")
    for s in sessions:
        out += _session_lines(s)
    prefixes = sorted({r.prefix for r in plan.routes if r.peer in names}, key=network_key)
    for version in _FAMILIES:
        out += _family_block(version, sessions, prefixes)
    out.append("exit")
    return out


def _bfd(profiles: Sequence[BFDProfile]) -> list[str]:
    if not profiles:
        return []
    out = ["bfd"]
    for p in sorted(profiles, key=lambda p: p.name):
        out.append(f" profile {p.name}")
        set_ = {
            "receive-interval": p.receive_interval,
            "transmit-interval": p.transmit_interval,
            "detect-multiplier": p.detect_multiplier,
            "echo-interval": p.echo_interval,
            "minimum-ttl": p.minimum_ttl,
        }
        given = {k: v for k, v in set_.items() if v is not None and v != _BFD_DEFAULTS[k]}
        for key in ("receive-interval", "transmit-interval", "detect-multiplier"):
            if key in given:
                out.append(f"  {key} {given[key]}")
        if p.echo_mode:
            out.append("  echo-mode")
        if "echo-interval" in given:
            out.append(f"  echo receive-interval {given['echo-interval']}")
            out.append(f"  echo transmit-interval {given['echo-interval']}")
        if p.passive_mode:
            out.append("  passive-mode")
        if "minimum-ttl" in given:
            out.append(f"  minimum-ttl {given['minimum-ttl']}")
        out.append(" exit")
    out.append("exit")
    return out


def _header(plan: BgpPlan, options: FrrOptions) -> list[str]:
    out = []
    if options.log_level is not None:
        out += [f"log stdout {options.log_level}", "log timestamp precision 3"]
    if options.hostname is not None:
        out.append(f"hostname {options.hostname}")
    for version, on in ((4, options.forwarding.ipv4), (6, options.forwarding.ipv6)):
        if on is False:
            out.append(f"no {_ip_word(version)} forwarding")
    out += ["ip nht resolve-via-default", "ipv6 nht resolve-via-default"]
    return out


def render(plan: BgpPlan, options: FrrOptions | None = None) -> str:
    """The whole frr.conf for `plan`; the same plan always gives the same text.

    The text holds peer passwords: log `redact(text)`, never the text itself.
    """
    options = options or FrrOptions()
    lines = _header(plan, options)
    routers: dict[tuple[int, str | None, str | None], list[Session]] = {}
    for s in plan.sessions:
        rid = str(s.peer.router_id) if s.peer.router_id is not None else None
        routers.setdefault((s.peer.my_asn, rid, s.peer.vrf), []).append(s)
    order = sorted(routers, key=lambda k: (k[2] or "", k[0], k[1] or ""))
    for key in order:
        for s in routers[key]:
            lines.append("!")
            lines += _peer_filters(s, plan.routes_to(s.name))
    for key in order:
        lines.append("!")
        lines += _router(key, routers[key], plan)
    if plan.bfd_profiles:
        lines.append("!")
        lines += _bfd(plan.bfd_profiles)
    lines.append("!")
    return "\n".join(lines) + "\n"


_PASSWORD_LINE = re.compile(r"^(\s*neighbor\s+\S+\s+password\s+)\S+", re.MULTILINE)


def redact(text: str) -> str:
    """frr.conf with every `neighbor X password P` shown as `<redacted>` (for logs)."""
    return _PASSWORD_LINE.sub(r"\1<redacted>", text)
