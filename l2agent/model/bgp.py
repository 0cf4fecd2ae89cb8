"""MetalLB's BGP resources as validated frozen values: BGPPeer, BGPAdvertisement, BFDProfile,
Community and ServiceBGPStatus.

Built from plain dicts like `crds`; the rules are MetalLB's `internal/config` (`peerFromCR`,
`bgpAdvertisementFromCR`, `bfdProfileFromCR`, `communitiesFromCrs`, `parseTimers`) and its
CRD schemas. BGPPeer is read in `metallb.io/v1beta2` and `v1beta1` alike: v1beta1 is the
same spec without the newer fields (the API server converts one into the other). Checks
across objects (secrets, BFD profile references, aggregation length against pool CIDRs,
LOCAL_PREF clashes, peers sharing a node) live in `bgp_checks`, which sees them all.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.community import BGPCommunity, parse_community
from l2agent.model.durations import parse_duration
from l2agent.model.secrets import Password, check_password
from l2agent.model.selectors import LabelSelector, any_matches, parse_selectors
from l2agent.model.types import IPAddress

__all__ = [
    "BFDProfile",
    "BGPAdvertisement",
    "BGPPeer",
    "CommunityAliases",
    "DynamicASN",
    "SecretRef",
    "ServiceBGPStatus",
    "derive_timers",
]

MAX_ASN = 0xFFFFFFFF
DEFAULT_BGP_PORT = 179
#: MetalLB's FRR mode refuses more communities on one advertisement.
MAX_COMMUNITIES = 63


class DynamicASN(enum.Enum):
    """`spec.dynamicASN`: the peer's ASN is learnt; `.value` is also FRR's `remote-as` word."""

    INTERNAL = "internal"
    EXTERNAL = "external"


def _int(raw: Any, where: str, lo: int, hi: int, *, default: int | None = None) -> int | None:
    if raw is None:
        return default
    if not isinstance(raw, int) or isinstance(raw, bool) or not lo <= raw <= hi:
        raise ConfigError(f"{where} must be an integer in {lo}..{hi}, got {raw!r}")
    return raw


def _ip(raw: Any, where: str) -> IPAddress | None:
    if raw in (None, ""):
        return None
    try:
        return ipaddress.ip_address(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{where}: {raw!r} is not an IP address") from None


def _name(raw: Any, where: str) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a string")
    return raw


def derive_timers(
    hold: float | None, keepalive: float | None, where: str
) -> tuple[float | None, float | None]:
    """MetalLB's `parseTimers`: a missing one is derived (keepalive = hold / 3, hold = 3 x
    keepalive); hold, in whole seconds, must be 0 or >= 3; keepalive must not exceed hold.

    Stricter than MetalLB in one case: a keepalive that truncates to 0 s beside a non-zero
    hold would render `timers 0 N` (no keepalives at all), so it is refused.
    """
    if hold is None and keepalive is None:
        return None, None
    if hold is None:
        assert keepalive is not None
        hold = keepalive * 3
    elif keepalive is None:
        keepalive = hold / 3
    whole_hold = int(hold)
    if whole_hold != 0 and whole_hold < 3:
        raise ConfigError(f"{where}: invalid holdTime {hold:g}s: must be 0 or >= 3s")
    if whole_hold > 65535 or int(keepalive) > 65535:
        raise ConfigError(f"{where}: holdTime and keepaliveTime must be at most 65535s")
    if keepalive > hold:
        raise ConfigError(
            f"{where}: invalid keepaliveTime {keepalive:g}s: must not exceed holdTime {hold:g}s"
        )
    if whole_hold != 0 and int(keepalive) == 0:
        raise ConfigError(
            f"{where}: keepaliveTime {keepalive:g}s is under one second (FRR counts whole "
            "seconds: it would send no keepalives)"
        )
    return hold, keepalive


@dataclass(frozen=True, slots=True)
class SecretRef:
    """`spec.passwordSecret`: a Secret by name (namespace: the peer's, as MetalLB reads it)."""

    name: str
    namespace: str | None = None
    key: str = "password"


@dataclass(frozen=True, slots=True)
class BGPPeer:
    """A validated BGPPeer (timers in seconds after MetalLB's derivation).

    `peer_asn` or `dynamic_asn` is set, never both; `address` or `interface` (unnumbered
    peering), never both. `password` is the literal `spec.password` until `bgp_checks`
    resolves `password_secret` into it. Empty `node_selectors` means every node.
    """

    name: str
    namespace: str
    my_asn: int
    peer_asn: int | None = None
    dynamic_asn: DynamicASN | None = None
    local_asn: int | None = None
    address: IPAddress | None = None
    interface: str | None = None
    source_address: IPAddress | None = None
    port: int = DEFAULT_BGP_PORT
    hold_time: float | None = None
    keepalive_time: float | None = None
    connect_time: int | None = None
    router_id: ipaddress.IPv4Address | None = None
    node_selectors: tuple[LabelSelector, ...] = ()
    password: Password | None = None
    password_secret: SecretRef | None = None
    bfd_profile: str | None = None
    enable_graceful_restart: bool = False
    ebgp_multihop: bool = False
    vrf: str | None = None
    dual_stack_address_family: bool = False
    disable_mp: bool = False

    def __post_init__(self) -> None:
        where = f"BGPPeer {self.name}"
        if not 1 <= self.my_asn <= MAX_ASN:
            raise ConfigError(f"{where}: missing local ASN (myASN)")
        if self.peer_asn is None and self.dynamic_asn is None:
            raise ConfigError(f"{where}: missing peer ASN (peerASN or dynamicASN)")
        if self.peer_asn is not None and self.dynamic_asn is not None:
            raise ConfigError(f"{where}: both peerASN and dynamicASN are set")
        if self.address is None and self.interface is None:
            raise ConfigError(f"{where}: neither peerAddress nor interface is set")
        if self.address is not None and self.interface is not None:
            raise ConfigError(f"{where}: both peerAddress and interface are set")
        if self.is_ibgp and self.ebgp_multihop:
            raise ConfigError(f"{where}: ebgpMultiHop is set for an iBGP peer (peerASN = myASN)")
        if self.password is not None and self.password_secret is not None:
            raise ConfigError(f"{where}: both password and passwordSecret are set")
        if self.local_asn is not None and self.is_ibgp:
            raise ConfigError(f"{where}: localASN is only for eBGP peers (FRR refuses it)")

    @property
    def is_ibgp(self) -> bool:
        """Same AS on both ends (or `dynamicASN: internal`): LOCAL_PREF is sent."""
        if self.dynamic_asn is not None:
            return self.dynamic_asn is DynamicASN.INTERNAL
        return self.peer_asn == self.my_asn

    @property
    def remote_as(self) -> str:
        """FRR's `remote-as` argument: the number, or `internal`/`external`."""
        if self.dynamic_asn is not None:
            return self.dynamic_asn.value
        return str(self.peer_asn)

    @property
    def families(self) -> frozenset[int]:
        """Address families the session carries: the peer address's, or both when the
        peer is unnumbered or asks for `dualStackAddressFamily` (MetalLB's rule)."""
        if self.interface is not None or self.dual_stack_address_family or self.address is None:
            return frozenset({4, 6})
        return frozenset({self.address.version})

    @property
    def peer_id(self) -> str:
        """MetalLB's neighbor ID: the address (or interface), `-vrf` appended in a VRF."""
        base = str(self.address) if self.address is not None else str(self.interface)
        return f"{base}-{self.vrf}" if self.vrf else base

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        """Does a session to this peer exist on a node with these labels?"""
        return not self.node_selectors or any_matches(self.node_selectors, labels)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> BGPPeer:
        """Parse and validate one BGPPeer (v1beta1 or v1beta2); raises `ConfigError`."""
        name, ns, _, _ = _meta.metadata(obj)
        where = f"BGPPeer {name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        peer_asn = _int(spec.get("peerASN"), f"{where}: peerASN", 0, MAX_ASN, default=0)
        dynamic = _name(spec.get("dynamicASN"), f"{where}: dynamicASN")
        try:
            dynamic_asn = DynamicASN(dynamic) if dynamic is not None else None
        except ValueError:
            raise ConfigError(
                f"{where}: invalid dynamicASN {dynamic!r} (internal or external)"
            ) from None
        hold = _duration(spec.get("holdTime"), f"{where}: holdTime")
        keepalive = _duration(spec.get("keepaliveTime"), f"{where}: keepaliveTime")
        hold, keepalive = derive_timers(hold, keepalive, where)
        connect = _duration(spec.get("connectTime"), f"{where}: connectTime")
        if connect is not None and (connect != int(connect) or not 1 <= connect <= 65535):
            raise ConfigError(f"{where}: connectTime must be whole seconds in 1..65535")
        router_id = _ip(spec.get("routerID"), f"{where}: routerID")
        if router_id is not None and router_id.version != 4:
            raise ConfigError(f"{where}: routerID {router_id} is not an IPv4 address")
        password = _name(spec.get("password"), f"{where}: password")
        return cls(
            name=name,
            namespace=ns,
            my_asn=_int(spec.get("myASN"), f"{where}: myASN", 0, MAX_ASN, default=0) or 0,
            peer_asn=peer_asn or None,
            dynamic_asn=dynamic_asn,
            local_asn=_int(spec.get("localASN"), f"{where}: localASN", 1, MAX_ASN),
            address=_ip(spec.get("peerAddress"), f"{where}: peerAddress"),
            interface=_name(spec.get("interface"), f"{where}: interface"),
            source_address=_ip(spec.get("sourceAddress"), f"{where}: sourceAddress"),
            # 0 is v1beta1's "unset" (FRR's default port then)
            port=_int(spec.get("peerPort"), f"{where}: peerPort", 0, 16384, default=0)
            or DEFAULT_BGP_PORT,
            hold_time=hold,
            keepalive_time=keepalive,
            connect_time=int(connect) if connect is not None else None,
            router_id=router_id if isinstance(router_id, ipaddress.IPv4Address) else None,
            node_selectors=parse_selectors(
                spec.get("nodeSelectors"), where=f"{where}: nodeSelectors"
            ),
            password=check_password(password, f"{where}: password") if password else None,
            password_secret=_secret_ref(spec.get("passwordSecret"), where),
            bfd_profile=_name(spec.get("bfdProfile"), f"{where}: bfdProfile"),
            enable_graceful_restart=_meta.boolean(
                spec.get("enableGracefulRestart"), False, f"{where}: enableGracefulRestart"
            ),
            ebgp_multihop=_meta.boolean(spec.get("ebgpMultiHop"), False, f"{where}: ebgpMultiHop"),
            vrf=_name(spec.get("vrf"), f"{where}: vrf"),
            dual_stack_address_family=_meta.boolean(
                spec.get("dualStackAddressFamily"), False, f"{where}: dualStackAddressFamily"
            ),
            disable_mp=_meta.boolean(spec.get("disableMP"), False, f"{where}: disableMP"),
        )


def _duration(raw: Any, where: str) -> float | None:
    return None if raw is None else parse_duration(raw, where)


def _secret_ref(raw: Any, where: str) -> SecretRef | None:
    """`passwordSecret: {name, namespace}`; an empty one (v1beta2's zero value) is None.

    `key` is not in MetalLB's schema (the API server prunes it); the seed guide writes
    `key: password`, so a static file may carry it: it is accepted when it names
    `password`, the only key MetalLB reads (another key is reported, never guessed at).
    """
    ref = _meta.mapping(raw, f"{where}: passwordSecret")
    name = _name(ref.get("name"), f"{where}: passwordSecret.name")
    if name is None:
        return None
    key = _name(ref.get("key"), f"{where}: passwordSecret.key") or "password"
    return SecretRef(name, _name(ref.get("namespace"), f"{where}: passwordSecret.namespace"), key)


@dataclass(frozen=True, slots=True)
class BFDProfile:
    """A validated BFDProfile; None means "FRR's default" (300 ms, x3, echo 50 ms)."""

    name: str
    namespace: str
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> BFDProfile:
        """Ranges from MetalLB's CRD and `bfdProfileFromCR` (milliseconds)."""
        name, ns, _, _ = _meta.metadata(obj)
        where = f"BFDProfile {name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        return cls(
            name=name,
            namespace=ns,
            receive_interval=_int(
                spec.get("receiveInterval"), f"{where}: receiveInterval", 10, 60000
            ),
            transmit_interval=_int(
                spec.get("transmitInterval"), f"{where}: transmitInterval", 10, 60000
            ),
            detect_multiplier=_int(
                spec.get("detectMultiplier"), f"{where}: detectMultiplier", 2, 255
            ),
            echo_interval=_int(spec.get("echoInterval"), f"{where}: echoInterval", 10, 60000),
            echo_mode=_meta.boolean(spec.get("echoMode"), False, f"{where}: echoMode"),
            passive_mode=_meta.boolean(spec.get("passiveMode"), False, f"{where}: passiveMode"),
            minimum_ttl=_int(spec.get("minimumTtl"), f"{where}: minimumTtl", 1, 254),
        )


@dataclass(frozen=True, slots=True)
class CommunityAliases:
    """A `Community` object: names for community values, used by BGPAdvertisements."""

    name: str
    namespace: str
    aliases: tuple[tuple[str, BGPCommunity], ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> CommunityAliases:
        name, ns, _, _ = _meta.metadata(obj)
        where = f"Community {name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        raw = spec.get("communities") or []
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: spec.communities must be a list")
        out: list[tuple[str, BGPCommunity]] = []
        for i, item in enumerate(raw):
            item = _meta.mapping(item, f"{where}: communities[{i}]")
            alias = item.get("name")
            if not isinstance(alias, str) or not alias:
                raise ConfigError(f"{where}: communities[{i}].name is missing")
            if any(alias == a for a, _ in out):
                raise ConfigError(f"{where}: duplicate definition of community {alias!r}")
            try:
                value = parse_community(item.get("value"))  # type: ignore[arg-type]
            except ConfigError as exc:
                raise ConfigError(f"{where}: parsing community {alias!r}: {exc.message}") from None
            out.append((alias, value))
        return cls(name=name, namespace=ns, aliases=tuple(out))


@dataclass(frozen=True, slots=True)
class BGPAdvertisement:
    """A validated BGPAdvertisement; `communities` are resolved values in MetalLB's order.

    Empty pool fields mean every pool; empty `node_selectors` every node; empty `peers`
    every peer; empty `service_selectors` every service. `local_pref` None means unset
    (MetalLB's 0).
    """

    name: str
    namespace: str
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int | None = None
    communities: tuple[BGPCommunity, ...] = ()
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()

    @classmethod
    def from_dict(
        cls, obj: Mapping[str, Any], aliases: Mapping[str, BGPCommunity] | None = None
    ) -> BGPAdvertisement:
        """Parse and validate; `aliases` resolve community names (Community objects).

        A community that is neither a value nor a known alias raises `CommunityFormatError`
        (MetalLB's transient error: the Community object may not have arrived yet).
        """
        name, ns, _, _ = _meta.metadata(obj)
        where = f"BGPAdvertisement {name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        agg = _int(spec.get("aggregationLength"), f"{where}: aggregationLength", 1, 32)
        agg6 = _int(spec.get("aggregationLengthV6"), f"{where}: aggregationLengthV6", 1, 128)
        service_selectors = parse_selectors(
            spec.get("serviceSelectors"), where=f"{where}: serviceSelectors"
        )
        if service_selectors and ((agg or 32) != 32 or (agg6 or 128) != 128):
            raise ConfigError(
                f"{where}: serviceSelectors and aggregationLength/aggregationLengthV6 are "
                "mutually exclusive"
            )
        raw_comms = _meta.str_list(spec.get("communities"), f"{where}: communities", unique=True)
        if len(raw_comms) > MAX_COMMUNITIES:
            raise ConfigError(
                f"{where}: at most {MAX_COMMUNITIES} communities, got {len(raw_comms)}"
            )
        values: set[BGPCommunity] = set()
        for text in raw_comms:
            known = (aliases or {}).get(text)
            if known is None:
                try:
                    known = parse_community(text)
                except ConfigError as exc:
                    raise type(exc)(f"{where}: community {text!r}: {exc.message}") from None
            values.add(known)
        local_pref = _int(spec.get("localPref"), f"{where}: localPref", 0, 0xFFFFFFFF)
        return cls(
            name=name,
            namespace=ns,
            aggregation_length=32 if agg is None else agg,
            aggregation_length_v6=128 if agg6 is None else agg6,
            local_pref=local_pref or None,
            communities=tuple(sorted(values, key=lambda c: c.sort_key)),
            ip_address_pools=_meta.str_list(
                spec.get("ipAddressPools"), f"{where}: ipAddressPools", unique=True
            ),
            ip_address_pool_selectors=parse_selectors(
                spec.get("ipAddressPoolSelectors"), where=f"{where}: ipAddressPoolSelectors"
            ),
            node_selectors=parse_selectors(
                spec.get("nodeSelectors"), where=f"{where}: nodeSelectors"
            ),
            peers=_meta.str_list(spec.get("peers"), f"{where}: peers", unique=True),
            service_selectors=service_selectors,
        )

    def applies_to_pool(self, name: str, labels: Mapping[str, str]) -> bool:
        """Named pools or selected pools; both empty means all pools."""
        if not self.ip_address_pools and not self.ip_address_pool_selectors:
            return True
        return name in self.ip_address_pools or any_matches(self.ip_address_pool_selectors, labels)

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return not self.node_selectors or any_matches(self.node_selectors, labels)

    def matches_service(self, labels: Mapping[str, str]) -> bool:
        return not self.service_selectors or any_matches(self.service_selectors, labels)

    def matches_peer(self, peer: str) -> bool:
        """MetalLB's `Advertisement.MatchesPeer`: no `peers` list means every peer."""
        return not self.peers or peer in self.peers

    def aggregation_for(self, version: int) -> int:
        return self.aggregation_length if version == 4 else self.aggregation_length_v6


@dataclass(frozen=True, slots=True)
class ServiceBGPStatus:
    """MetalLB's ServiceBGPStatus: which peers a node advertises a service to."""

    name: str
    namespace: str
    node: str
    service_name: str
    service_namespace: str
    peers: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ServiceBGPStatus:
        name, ns, _, _ = _meta.metadata(obj)
        where = f"ServiceBGPStatus {name}"
        status = _meta.mapping(obj.get("status"), f"{where}: status")
        return cls(
            name=name,
            namespace=ns,
            node=str(status.get("node") or ""),
            service_name=str(status.get("serviceName") or ""),
            service_namespace=str(status.get("serviceNamespace") or ""),
            peers=_meta.str_list(status.get("peers"), f"{where}: status.peers"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The status block as MetalLB writes it."""
        return {
            "node": self.node,
            "serviceName": self.service_name,
            "serviceNamespace": self.service_namespace,
            "peers": list(self.peers),
        }
