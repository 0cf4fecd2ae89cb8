"""GossipConfig: every memberlist knob, with its formula, and memberlist's presets.

Durations are float seconds (so a probe interval of a few milliseconds is expressible);
multipliers that memberlist keeps as ints are floats here where a fraction is useful. The
presets `lan()`, `wan()` and `local()` carry memberlist's exact values (spec §10);
`fast()` is ours, for small clusters that must detect a failure in about a hundred
milliseconds, and stays wire-compatible with Go peers (it only sends the same messages more
often and decides sooner).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gossip.addresses import GOSSIP_PORT
from gossip.errors import LocalError
from gossip.messages import META_MAX_SIZE, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN

__all__ = ["GossipConfig", "fast", "lan", "local", "wan"]


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """Configuration of one member. Build with a preset and `dataclasses.replace` the rest."""

    name: str
    """Unique node name: the member table is keyed by it (MetalLB: the Kubernetes node name)."""
    bind_addr: str = "0.0.0.0"
    """IP the runtime binds UDP and TCP to."""
    bind_port: int = GOSSIP_PORT
    """Port for both UDP and TCP."""
    advertise_addr: str = ""
    """IP others reach us at; "" means `bind_addr`. Must be a concrete IP for the engine:
    the runtime resolves 0.0.0.0 before building the engine. IPv4 is sent as 4 bytes."""
    advertise_port: int = 0
    """Port others reach us at; 0 means `bind_port`."""
    protocol_version: int = 2
    """Our `pcur`; Go's default (ProtocolVersion2Compatible). Vsn is [1, 5, this, d...]."""
    delegate_protocol_version: int = 0
    """Application protocol version `dcur` (0 when unused, as in MetalLB)."""
    delegate_protocol_min: int = 0
    """Application protocol `dmin`."""
    delegate_protocol_max: int = 0
    """Application protocol `dmax`."""
    tcp_timeout: float = 10.0
    """Seconds: connect + whole-exchange deadline of push/pull and reliable user streams, and
    the deadline of every accepted stream."""
    indirect_checks: int = 3
    """Number of relays asked to ping a target that missed its direct ack (`ProbeTimeout`)."""
    retransmit_mult: float = 4
    """Transmits per broadcast = retransmit_mult * ceil(log10(n + 1)) (`retransmit_limit`)."""
    suspicion_mult: float = 4
    """min suspicion timeout = suspicion_mult * max(1, log10(max(1, n))) * probe_interval;
    also k = suspicion_mult - 2 confirmations expected (0 if n - 2 < k)."""
    suspicion_max_timeout_mult: float = 6
    """max suspicion timeout = suspicion_max_timeout_mult * min; with k confirmations the
    timeout shrinks from max to min as max - ln(c+1)/ln(k+1) * (max - min)."""
    push_pull_interval: float = 30.0
    """Seconds between anti-entropy push/pulls, scaled by `push_pull_scale` past 32 nodes;
    0 disables periodic push/pull."""
    probe_interval: float = 1.0
    """Seconds between probes; scaled by (health score + 1). A failed probe lasts one scaled
    interval (ack wait, indirect phase and TCP fallback all end then)."""
    probe_timeout: float = 0.5
    """Seconds to wait for the direct ack before asking relays; not scaled by health. Should
    be about the 99th percentile RTT and below `probe_interval`."""
    disable_tcp_pings: bool = False
    """If false, a probe also tries a TCP ping to targets advertising pmax ≥ 3."""
    awareness_max_multiplier: int = 8
    """Health score ranges 0..this-1; probe interval * (score + 1). 1 disables the back-off."""
    gossip_nodes: int = 3
    """Random members sent queued broadcasts every `gossip_interval`; 0 disables gossip."""
    gossip_interval: float = 0.2
    """Seconds between gossip rounds."""
    gossip_to_the_dead_time: float = 30.0
    """Seconds dead members keep being gossiped to (so a wrongly dead node can refute), and
    after which dead/left entries are reaped at the next probe-list wrap."""
    gossip_verify_incoming: bool = True
    """With a keyring: drop plaintext packets/streams. False accepts them (rollout step)."""
    gossip_verify_outgoing: bool = True
    """With a keyring: encrypt what we send. False sends plaintext (rollout step)."""
    enable_compression: bool = True
    """memberlist default: compress outgoing messages (LZW) when smaller. We always accept
    compressed input; this switch only affects what we send."""
    handoff_queue_depth: int = 1024
    """Max alive/suspect/dead/user messages buffered per packet burst; beyond, dropped."""
    udp_buffer_size: int = 1400
    """Plaintext byte budget of one packet when piggybacking broadcasts."""
    dead_node_reclaim_time: float = 0.0
    """Seconds after which a dead name may be taken over by another address; 0 = never."""
    label: str = ""
    """Cluster label (memberlist ≥ 0.3.0): prefixed to packets and streams and used as AES-GCM
    additional data. Empty for MetalLB and 0.2.x peers."""
    skip_inbound_label_check: bool = False
    """Accept unlabeled input as if it carried our label (rollout of a label)."""
    cidrs_allowed: tuple[str, ...] = ()
    """memberlist's CIDRsAllowed: when non-empty, alive messages are accepted only from these
    networks and only about addresses in them (IPv4 and IPv6 listed separately); empty
    allows all."""
    max_stream_bytes: int = 20 * 1024 * 1024
    """Largest stream message we buffer (memberlist's maxPushStateBytes, 20 MiB)."""
    max_inbound_streams: int = 128
    """Concurrent inbound streams (memberlist's push/pull limit). At the limit the oldest
    inbound stream is dropped to make room (memberlist refuses the new one instead), so
    slow connections cannot lock real peers out."""
    max_stream_buffer_total: int = 64 * 1024 * 1024
    """Extension: bytes all open streams may hold together (buffered input, envelopes
    waiting for their tag, parsed entries, push/pulls waiting to merge). Past it the stream
    holding the most is dropped (`STREAM_BUFFER_FULL`), so 128 peers each declaring a
    20 MiB envelope cannot take 2.5 GiB."""
    max_messages_per_packet: int = 255
    """Extension: parts (messages and bad parts) one datagram may carry through all its
    compound/compress wrappers; the rest are skipped (`TOO_MANY_MESSAGES`). Go compounds
    hold at most 255, so a real peer never reaches it."""
    source_messages_per_second: float = 4096.0
    """Extension: messages per second one member address (or all strangers together) may
    make us decode; datagrams past it are dropped unread (`RATE_LIMITED`). A member of a
    fast-preset cluster sends ~150/s to each peer."""
    source_bytes_per_second: float = 512 * 1024.0
    """Extension: bytes per second (received plus decompressed) per source, as above."""
    reply_amplification: float = 2.0
    """Extension: answers to a source (acks with piggybacked gossip, nacks, relayed pings
    and acks) may total at most this many times the bytes it sent us (`REPLY_BUDGET`), so
    nothing can be reflected or amplified through us."""
    violation_events_per_second: float = 1.0
    """Extension: `ProtocolViolation` events per second after a burst of
    `violation_burst`; the rest are counted and summarised (`ViolationsSuppressed`) every
    `violation_summary_interval` seconds."""
    violation_burst: int = 10
    """Extension: violation events let through at once before the rate applies."""
    violation_summary_interval: float = 10.0
    """Extension: seconds between summaries of violations not reported one by one."""
    work_per_call: int = 65536
    """Extension: work units (about 30 ns each) one engine call spends on streams and
    push/pull merges; what remains continues at the next `tick`, which `next_deadline`
    then asks for at once. Bounds the time any one input can hold the caller's loop."""
    max_members: int = 65536
    """Extension: members (any state) the table may hold; alive messages naming new members
    beyond it are dropped, so a flood of invented names cannot exhaust memory."""
    max_push_nodes: int = 1 << 20
    """Largest `Nodes` count accepted in a push/pull header (memberlist 0.6.0's limit)."""
    dead_after_confirmations: int = 0
    """Extension (0 = off, memberlist behaviour). When > 0, a member we suspect is declared
    dead as soon as this many *independent* suspicions (distinct accusers besides the first)
    have reached us, without waiting for the Lifeguard timer. Go peers see an ordinary dead
    message. Use 1..2 in small clusters with a low false-positive rate to cut failover to
    about one probe interval plus gossip delay."""
    suspicion_min_timeout: float = 0.0
    """Extension: floor in seconds on the computed minimum suspicion timeout (0 = none); keeps
    a very small probe_interval from making suspicion shorter than scheduling jitter."""
    probe_pinned_every_round: bool = True
    """Extension: members set with `Engine.set_pinned_targets` (e.g. the owner of the
    addresses this node would take over) are probed every probe interval in addition to the
    round-robin target, so their failure is seen within one interval."""
    emit_suspect_events: bool = True
    """Extension: emit `MemberSuspected` when we start suspecting a member."""
    probe_copies: int = 1
    """Extension (1 = memberlist): copies of each direct ping, indirect ping request and
    direct refutation sent back to back (same sequence number; any ack counts). Under
    independent loss p per packet a direct probe fails with (1-(1-p)^2)^copies instead of
    1-(1-p)^2: at 19% node-to-node loss, 34% -> 4% with 3 copies. Go peers just answer
    each ping."""
    refute_directly: bool = False
    """Extension: when accused (suspect/dead about us), also send the refuting alive message
    straight to every live member at once, besides gossiping it. In a 3-node cluster the
    retransmit limit (retransmit_mult * ceil(log10(n+1)) = 3) leaves a refutation only ~1.5
    tries per peer, so under 10% loss about 1 suspicion in 100 ended in a false death; Go
    peers see an ordinary alive message."""

    def __post_init__(self) -> None:
        if not self.name:
            raise LocalError("name must not be empty")
        for fname in ("bind_port", "advertise_port"):
            port = getattr(self, fname)
            if not 0 <= port <= 0xFFFF:
                raise LocalError(f"{fname}={port} is not a port")
        if not PROTOCOL_VERSION_MIN <= self.protocol_version <= PROTOCOL_VERSION_MAX:
            raise LocalError(f"protocol_version {self.protocol_version} outside 1..5")
        positive = ("probe_interval", "probe_timeout", "gossip_interval", "tcp_timeout")
        for fname in positive:
            if getattr(self, fname) <= 0:
                raise LocalError(f"{fname} must be > 0")
        if self.suspicion_mult <= 0 or self.suspicion_max_timeout_mult < 1:
            raise LocalError("suspicion_mult must be > 0 and suspicion_max_timeout_mult >= 1")
        if self.awareness_max_multiplier < 1:
            raise LocalError("awareness_max_multiplier must be >= 1")
        if self.indirect_checks < 0 or self.gossip_nodes < 0 or self.retransmit_mult < 0:
            raise LocalError("indirect_checks, gossip_nodes, retransmit_mult must be >= 0")
        if len(self.label.encode()) > 255:
            raise LocalError("label longer than 255 bytes")
        if self.udp_buffer_size < 64:
            raise LocalError("udp_buffer_size too small")
        if not 1 <= self.probe_copies <= 8:
            raise LocalError("probe_copies must be between 1 and 8")
        if self.reply_amplification < 1 or self.max_messages_per_packet < 1:
            raise LocalError("reply_amplification must be >= 1, max_messages_per_packet >= 1")
        if self.work_per_call < 1024 or self.max_stream_buffer_total < self.max_stream_bytes // 16:
            raise LocalError("work_per_call or max_stream_buffer_total too small")
        if self.dead_after_confirmations < 0:
            raise LocalError("dead_after_confirmations must be >= 0")
        try:
            for cidr in self.cidrs_allowed:
                ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise LocalError(f"bad network in cidrs_allowed: {exc}") from exc
        try:
            ipaddress.ip_address(self.advertise_ip)
        except ValueError as exc:
            raise LocalError(f"advertise address {self.advertise_ip!r} is not an IP") from exc

    @property
    def advertise_ip(self) -> str:
        """The IP we announce in alive messages."""
        return self.advertise_addr or self.bind_addr

    @property
    def advertise(self) -> tuple[str, int]:
        """(IP, port) we announce."""
        return (self.advertise_ip, self.advertise_port or self.bind_port)

    @property
    def vsn(self) -> bytes:
        """The six version bytes of our alive messages and push/pull entries."""
        return bytes(
            [
                PROTOCOL_VERSION_MIN,
                PROTOCOL_VERSION_MAX,
                self.protocol_version,
                self.delegate_protocol_min,
                self.delegate_protocol_max,
                self.delegate_protocol_version,
            ]
        )

    @property
    def meta_max_size(self) -> int:
        """memberlist's MetaMaxSize."""
        return META_MAX_SIZE


_LAN: dict[str, Any] = dict(
    tcp_timeout=10.0,
    indirect_checks=3,
    retransmit_mult=4,
    suspicion_mult=4,
    suspicion_max_timeout_mult=6,
    push_pull_interval=30.0,
    probe_interval=1.0,
    probe_timeout=0.5,
    disable_tcp_pings=False,
    awareness_max_multiplier=8,
    gossip_nodes=3,
    gossip_interval=0.2,
    gossip_to_the_dead_time=30.0,
)


def lan(name: str, **overrides: Any) -> GossipConfig:
    """memberlist's DefaultLANConfig: failure detected in ~5 s at 10 nodes."""
    return GossipConfig(name=name, **{**_LAN, **overrides})


def wan(name: str, **overrides: Any) -> GossipConfig:
    """memberlist's DefaultWANConfig: slower probes and longer suspicion."""
    values = dict(
        _LAN,
        tcp_timeout=30.0,
        suspicion_mult=6,
        push_pull_interval=60.0,
        probe_interval=5.0,
        probe_timeout=3.0,
        gossip_nodes=4,
        gossip_interval=0.5,
        gossip_to_the_dead_time=60.0,
    )
    return GossipConfig(name=name, **{**values, **overrides})


def local(name: str, **overrides: Any) -> GossipConfig:
    """memberlist's DefaultLocalConfig (loopback / one host)."""
    values = dict(
        _LAN,
        tcp_timeout=1.0,
        indirect_checks=1,
        retransmit_mult=2,
        suspicion_mult=3,
        push_pull_interval=15.0,
        probe_timeout=0.2,
        gossip_interval=0.1,
        gossip_to_the_dead_time=15.0,
    )
    return GossipConfig(name=name, **{**values, **overrides})


def fast(name: str, **overrides: Any) -> GossipConfig:
    """Ours: sub-150 ms failure detection for small clusters (≲ 20 members).

    Probe every 20 ms (10 ms ack wait), Lifeguard suspicion of max(50 ms, 3 * log10(n) *
    interval) once another member confirms it and up to 6 times that without confirmation
    (so a lone false suspicion has ~300 ms to be refuted while a real failure, which every
    prober sees, is declared in ~100 ms), health back-off capped at *2, gossip every 10 ms,
    and a refutation sent straight to every member (`refute_directly`). Costs ~100 packets per
    member per second: meant for a LAN with a handful of speakers, not a thousand members.

    `dead_after_confirmations` stays 0 here: measured in the lab with 10% loss on every link
    and both CPUs busy, declaring death on the first independent confirmation killed live
    members about once a minute (both peers' probes fail together under loss + CPU
    starvation), while the Lifeguard timer with direct refutation killed none. Crash
    detection stays ~90 ms (simulated) / ~100 ms (lab). A member frozen for longer than its
    suspicion timeout (GC pause, CPU starvation: the speaker asks for SCHED_RR to avoid it)
    is declared dead, then refutes and rejoins when it runs again. The member table holds
    at most 4,096 entries (a flood of invented names cannot grow it past that).
    """
    values = dict(
        _LAN,
        tcp_timeout=1.0,
        indirect_checks=2,
        retransmit_mult=3,
        suspicion_mult=3,
        suspicion_max_timeout_mult=6,
        suspicion_min_timeout=0.05,
        push_pull_interval=10.0,
        probe_interval=0.02,
        probe_timeout=0.01,
        awareness_max_multiplier=2,
        gossip_nodes=3,
        gossip_interval=0.01,
        gossip_to_the_dead_time=10.0,
        dead_after_confirmations=0,
        refute_directly=True,
        probe_copies=3,
        max_members=4096,
    )
    return GossipConfig(name=name, **{**values, **overrides})


def with_settings(config: GossipConfig, items: Iterable[str]) -> GossipConfig:
    """`config` with `field=value` texts applied (command-line `--set`), typed per field.

    Every knob stays reachable from the command line without a flag per field. Each value is
    parsed by its field's type (a tuple field takes a comma-separated list) and anything that
    does not parse is refused: a typo such as `flase` must not turn silently into False.
    """
    types = {f.name: str(f.type) for f in dataclasses.fields(GossipConfig)}
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise LocalError(f"unknown gossip setting {item!r} (want FIELD=VALUE)")
        changes[key] = _parse_setting(key, types[key], value.strip())
    return dataclasses.replace(config, **changes)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse_setting(key: str, kind: str, value: str) -> Any:
    """One `--gossip-set` value parsed as the field's annotated type, or LocalError."""
    try:
        if kind == "bool":
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("tuple[str"):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if kind == "str":
            return value
    except ValueError:
        raise LocalError(f"gossip setting {key}: {value!r} is not a {kind}") from None
    raise LocalError(f"gossip setting {key}: fields of type {kind} cannot be set")


PRESETS: dict[str, Callable[..., GossipConfig]] = {
    "lan": lan,
    "wan": wan,
    "local": local,
    "fast": fast,
}
"""Preset name -> factory, for command lines (`python -m gossip`, `l2agent speaker`)."""
