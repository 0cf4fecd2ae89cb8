"""What the speaker and the controller report about themselves, as values: ownership rows,
member rows, BGP sessions, pool usage and the gossip keys. `l2agent.metrics` renders them as
gauges and `l2agent.health` as /status; the pure parts that produce them (the ownership
ledger, the controller's planner, the BGP session join, the key rotation) need no metrics
library to do so."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from gossip.errors import MalformedReason
from gossip.events import DropReason
from gossip.node_meta import MetaProblem
from gossip.rotation import RotationStatus

__all__ = [
    "BgpReport",
    "BgpSessionRow",
    "GossipKeyReport",
    "GossipReport",
    "IPLike",
    "KeyFileProblem",
    "MemberRow",
    "OwnershipChange",
    "OwnershipRow",
    "PoolUsage",
]

IPLike = ipaddress.IPv4Address | ipaddress.IPv6Address | str


class OwnershipChange(enum.Enum):
    """Direction of an ownership change on this node (the metric label value)."""

    GAINED = "gained"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class OwnershipRow:
    """One service IP as this speaker sees it, at the moment of asking.

    ``owner`` is the node the election picks in this speaker's view (None: nobody eligible).
    ``announcing`` is True only on the node that announces the IP right now; ``interfaces``
    are the interfaces it announces on (empty when not announcing). ``since`` is the wall
    clock (Unix seconds) of the last owner change this speaker saw for the IP, or None.
    """

    ip: IPLike
    service: str
    owner: str | None
    announcing: bool
    interfaces: tuple[str, ...] = ()
    since: float | None = None
    protocol: str = "layer2"

    def __post_init__(self) -> None:
        if self.interfaces and not self.announcing:
            raise ValueError(f"{self.ip}: interfaces given but not announcing")


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One gossip member as this speaker's member table holds it.

    ``state`` is one of :data:`MEMBER_STATES`; pass ``MemberState.name.lower()``.
    """

    name: str
    addr: str
    state: str


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """Addresses of one IPAddressPool: usable (after avoidBuggyIPs) and in use (distinct IPs)."""

    pool: str
    total_v4: int
    total_v6: int
    in_use_v4: int
    in_use_v6: int


@dataclass(frozen=True, slots=True)
class BgpSessionRow:
    """One BGP session of this node: what the plan asks for joined with what FRR reports.

    ``peer`` is the BGPPeer's name ("" for a neighbor FRR has that no BGPPeer names);
    ``state`` is FRR's ``bgpState`` (``Established``, ``Active``, ``Connect`` ...), "" when
    FRR has no such neighbor (its configuration is not applied yet); ``bfd`` is the BFD
    session's status (``up``, ``down`` ...; "" when FRR has none yet), None without BFD.
    """

    peer: str
    address: str
    vrf: str
    state: str
    prefixes_sent: int = 0
    bfd: str | None = None
    last_reset: str = ""

    @property
    def established(self) -> bool:
        return self.state == "Established"


@dataclass(frozen=True, slots=True)
class BgpReport:
    """This node's BGP sessions; ``error`` says why FRR's state could not be read (the rows
    then hold the last reading)."""

    sessions: tuple[BgpSessionRow, ...] = ()
    error: str | None = None


class KeyFileProblem(enum.Enum):
    """Why the secret key file could not be read (the metric label)."""

    MISSING = "missing"  # the file (or its Secret volume) is gone
    UNREADABLE = "unreadable"  # permissions, an I/O error


@dataclass(frozen=True, slots=True)
class GossipKeyReport:
    """The speaker's gossip keys and their rotation, at the moment of asking."""

    status: RotationStatus
    rotating_for: float
    """Seconds since the current rotation began; 0 when steady."""
    file_errors: Mapping[KeyFileProblem, int]
    """Failed reads of the secret key file since start, by problem (the keys stay as they are)."""
    unreadable_meta: Mapping[MetaProblem, int]
    """Distinct member metas seen that claim our format but cannot be read, by problem."""


@dataclass(frozen=True, slots=True)
class GossipReport:
    """What the gossip refused or found wrong in its input, read at scrape time.

    `dropped` counts every violation by the engine's reason (`malformed` breaks MALFORMED
    down by the codec's); `undecryptable` are the source IPs that sent what no installed
    key opens in the last minute; `key_mismatch` is true while this speaker stays unready
    because the only peers it hears are ones it cannot decrypt."""

    dropped: Mapping[DropReason, int] = field(default_factory=dict)
    malformed: Mapping[MalformedReason, int] = field(default_factory=dict)
    stalls: int = 0
    undecryptable: frozenset[str] = frozenset()
    key_mismatch: bool = False
