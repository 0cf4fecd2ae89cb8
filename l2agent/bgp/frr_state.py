"""FRR's view of its BGP sessions and BFD peers, parsed from vtysh JSON into typed values.

Pure: text in, frozen dataclasses out (``l2agent.bgp.frr_poll`` runs vtysh). The fields are
the ones MetalLB's FRR metrics exporter reads (frr-tools/metrics: ``show bgp neighbors json``,
``show bfd peers json``, ``show bfd peers counters json``), so the metrics keep its names and
meanings: a session is up when FRR says ``Established``; the announced prefix count is the
sum of ``sentPrefixCounter`` over the address families; a BFD peer is up when its status is
``up``.

Bounded: a document larger than ``MAX_JSON_BYTES`` or with more than ``MAX_PEERS`` entries is
refused as ``MalformedFrrOutput`` (FRR's output is a peer's word, not ours).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from l2agent.errors import MalformedInput

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_PEERS = 4096
DEFAULT_BGP_PORT = 179
DEFAULT_VRF = "default"


class MalformedFrrOutput(MalformedInput):
    """vtysh answered something that is not the JSON we expect (or is too large)."""


@dataclass(frozen=True, slots=True)
class BgpSession:
    """One BGP neighbor as FRR reports it (counters since bgpd started)."""

    address: str
    """The neighbor's address, normalised (``ipaddress`` text form)."""
    port: int
    """The remote port of the connection; ``DEFAULT_BGP_PORT`` while none is up."""
    vrf: str
    state: str
    """FRR's ``bgpState``: ``Established``, ``Active``, ``Connect``, ``Idle``, ``OpenSent``..."""
    prefixes_sent: int
    updates_sent: int
    updates_received: int
    opens_sent: int
    opens_received: int
    notifications_sent: int
    keepalives_sent: int
    keepalives_received: int
    route_refresh_sent: int
    total_sent: int
    total_received: int
    established_count: int
    """How many times this session has reached Established (``connectionsEstablished``)."""
    dropped_count: int
    """How many times an Established session went down (``connectionsDropped``)."""
    last_reset: str = ""
    """FRR's ``lastResetDueTo`` (why the session last went down), for status pages."""

    @property
    def established(self) -> bool:
        return self.state == "Established"

    @property
    def label(self) -> str:
        """MetalLB's ``peer`` label value, ``address:port`` exactly as its exporter prints it
        (no brackets around an IPv6 address)."""
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class BfdPeer:
    """One BFD session: its state (``show bfd peers``) and counters (``... counters``)."""

    peer: str
    local: str
    vrf: str
    interface: str
    status: str
    """``up``, ``down``, ``init``, ``shutdown``."""
    multihop: bool
    receive_interval_ms: int
    transmit_interval_ms: int
    detect_multiplier: int
    control_packet_input: int = 0
    control_packet_output: int = 0
    echo_packet_input: int = 0
    echo_packet_output: int = 0
    session_up_events: int = 0
    session_down_events: int = 0
    zebra_notifications: int = 0

    @property
    def up(self) -> bool:
        return self.status == "up"


@dataclass(frozen=True, slots=True)
class FrrState:
    """Everything read from FRR in one poll; ``error`` says why a part is missing."""

    sessions: tuple[BgpSession, ...] = ()
    bfd_peers: tuple[BfdPeer, ...] = ()
    taken_at: float = 0.0
    """When it was read (the caller's monotonic clock)."""
    error: str | None = None

    def session(self, address: str) -> BgpSession | None:
        wanted = _address(address)
        return next((s for s in self.sessions if s.address == wanted), None)


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise MalformedFrrOutput(f"not an IP address: {text[:64]!r}") from exc


def _load(text: str) -> Any:
    if len(text) > MAX_JSON_BYTES:
        raise MalformedFrrOutput(f"vtysh output over {MAX_JSON_BYTES} bytes")
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise MalformedFrrOutput(f"not JSON: {exc}") from exc


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value


def _session(address: str, doc: Any, vrf: str) -> BgpSession:
    if not isinstance(doc, dict):
        raise MalformedFrrOutput(f"neighbor {address[:64]!r} is not an object")
    stats = doc.get("messageStats")
    stats = stats if isinstance(stats, dict) else {}
    families = doc.get("addressFamilyInfo")
    families = families if isinstance(families, dict) else {}
    sent = sum(_int(f.get("sentPrefixCounter")) for f in families.values() if isinstance(f, dict))
    port = _int(doc.get("portForeign"))
    return BgpSession(
        address=_address(address),
        port=port if port > 0 else DEFAULT_BGP_PORT,
        vrf=str(doc.get("vrf") or vrf),
        state=str(doc.get("bgpState", "")),
        prefixes_sent=sent,
        updates_sent=_int(stats.get("updatesSent")),
        updates_received=_int(stats.get("updatesRecv")),
        opens_sent=_int(stats.get("opensSent")),
        opens_received=_int(stats.get("opensRecv")),
        notifications_sent=_int(stats.get("notificationsSent")),
        keepalives_sent=_int(stats.get("keepalivesSent")),
        keepalives_received=_int(stats.get("keepalivesRecv")),
        route_refresh_sent=_int(stats.get("routeRefreshSent")),
        total_sent=_int(stats.get("totalSent")),
        total_received=_int(stats.get("totalRecv")),
        established_count=_int(doc.get("connectionsEstablished")),
        dropped_count=_int(doc.get("connectionsDropped")),
        last_reset=str(doc.get("lastResetDueTo", ""))[:128],
    )


def parse_bgp_neighbors(text: str, vrf: str = DEFAULT_VRF) -> tuple[BgpSession, ...]:
    """``show bgp [vrf V] neighbors json``: ``{address: {...}}`` -> sessions, sorted by address.

    Interface (unnumbered) neighbors are keyed by interface name in FRR; they carry no
    address and are skipped, as MetalLB's exporter skips them.
    """
    doc = _load(text)
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        raise MalformedFrrOutput("neighbors: expected an object")
    if len(doc) > MAX_PEERS:
        raise MalformedFrrOutput(f"more than {MAX_PEERS} neighbors")
    out = []
    for key, value in doc.items():
        try:
            ipaddress.ip_address(key)
        except ValueError:
            continue  # an interface name or FRR's own summary keys
        out.append(_session(key, value, vrf))
    return tuple(sorted(out, key=lambda s: (s.vrf, s.address)))


def _peer_key(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        _address(str(doc.get("peer", ""))),
        str(doc.get("local", "")),
        str(doc.get("vrf", DEFAULT_VRF)),
        str(doc.get("interface", "")),
    )


def _list(text: str, what: str) -> list[dict[str, Any]]:
    doc = _load(text)
    if doc is None:
        return []
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise MalformedFrrOutput(f"{what}: expected a list of objects")
    if len(doc) > MAX_PEERS:
        raise MalformedFrrOutput(f"more than {MAX_PEERS} {what}")
    return doc


def parse_bfd_peers(peers_text: str, counters_text: str = "") -> tuple[BfdPeer, ...]:
    """``show bfd peers json`` plus (optionally) ``show bfd peers counters json``, joined on
    (peer, local, vrf, interface); sorted by peer."""
    counters = {_peer_key(c): c for c in _list(counters_text, "BFD counters")}
    out = []
    for doc in _list(peers_text, "BFD peers"):
        key = _peer_key(doc)
        c = counters.get(key, {})
        out.append(
            BfdPeer(
                peer=key[0],
                local=key[1],
                vrf=key[2],
                interface=key[3],
                status=str(doc.get("status", "")),
                multihop=bool(doc.get("multihop", False)),
                receive_interval_ms=_int(doc.get("receive-interval")),
                transmit_interval_ms=_int(doc.get("transmit-interval")),
                detect_multiplier=_int(doc.get("detect-multiplier")),
                control_packet_input=_int(c.get("control-packet-input")),
                control_packet_output=_int(c.get("control-packet-output")),
                echo_packet_input=_int(c.get("echo-packet-input")),
                echo_packet_output=_int(c.get("echo-packet-output")),
                session_up_events=_int(c.get("session-up")),
                session_down_events=_int(c.get("session-down")),
                zebra_notifications=_int(c.get("zebra-notifications")),
            )
        )
    return tuple(sorted(out, key=lambda p: (p.vrf, p.peer, p.local)))


def up_sessions(sessions: Iterable[BgpSession]) -> frozenset[str]:
    """Addresses of the Established sessions."""
    return frozenset(s.address for s in sessions if s.established)
