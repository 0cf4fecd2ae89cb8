"""Interface eligibility and selection, as tables of MetalLB's rules."""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from l2agent.interfaces.inventory import (
    DEFAULT_EXCLUDE,
    Family,
    Ineligible,
    Interface,
    desired_by_interface,
    eligible,
    ineligibility,
    missing_names,
    reannounce_needed,
    responder_interfaces,
    select,
)


@dataclass(frozen=True, slots=True)
class InterfaceSelection:
    """The plan's selection shape (``l2agent.model.crds.InterfaceSelection``)."""

    all: bool
    names: frozenset[str] = frozenset()


ALL_INTERFACES = InterfaceSelection(True)

LL = IPv6Address("fe80::1")
ETH0 = Interface(2, "eth0", b"\x02\x00\x00\x00\x00\x01", True, True, False, None, LL, "")


def nic(name: str, index: int = 2, **changes: object) -> Interface:
    return replace(ETH0, name=name, index=index, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("iface", "family", "reason"),
    [
        (ETH0, Family.IPV4, None),
        (ETH0, Family.IPV6, None),
        (nic("eth0", up=False), Family.IPV4, Ineligible.DOWN),
        (nic("eth0", master=7), Family.IPV4, Ineligible.ENSLAVED),  # bond slave / bridge port
        (nic("bond0", kind="bond"), Family.IPV4, None),  # the bond itself qualifies
        (nic("eth0", noarp=True), Family.IPV6, Ineligible.NOARP),
        (nic("tun0", broadcast=False), Family.IPV4, Ineligible.NO_BROADCAST),
        (nic("tun0", broadcast=False), Family.IPV6, None),  # NDP does not need BROADCAST
        (nic("eth0", link_local=None), Family.IPV6, Ineligible.NO_LINK_LOCAL),
        (nic("eth0", link_local=None), Family.IPV4, None),  # ARP does not need a link-local
        (nic("eth0", carrier=False), Family.IPV4, None),  # MetalLB checks admin up only
        (nic("lo"), Family.IPV4, Ineligible.EXCLUDED),
        (nic("loop0"), Family.IPV4, None),  # ^lo$ is anchored at both ends
        (nic("veth1234"), Family.IPV4, Ineligible.EXCLUDED),
        (nic("kube-ipvs0"), Family.IPV4, Ineligible.EXCLUDED),
        (nic("docker0"), Family.IPV6, Ineligible.EXCLUDED),
        (nic("cali7a"), Family.IPV4, Ineligible.EXCLUDED),
        (nic("mydocker0"), Family.IPV4, None),  # ^ anchors: only prefixes are excluded
        (nic("veth0", up=False), Family.IPV4, Ineligible.EXCLUDED),  # exclusion comes first
    ],
)
def test_eligibility_table(iface: Interface, family: Family, reason: Ineligible | None) -> None:
    assert ineligibility(iface, family) is reason
    assert eligible(iface, family) is (reason is None)


def test_every_default_exclusion_pattern_is_metallbs() -> None:
    assert len(DEFAULT_EXCLUDE) == 14
    for name in (
        "docker0",
        "cbr0",
        "dummy0",
        "virbr0",
        "lxcbr0",
        "veth9",
        "lo",
        "cali1",
        "tunl0",
        "flannel.1",
        "kube-ipvs0",
        "cni0",
        "nodelocaldns",
        "lxc12",
    ):
        assert ineligibility(nic(name), Family.IPV4) is Ineligible.EXCLUDED, name


def test_exclusion_list_is_configurable() -> None:
    assert eligible(nic("veth0"), Family.IPV4, exclude=())
    assert not eligible(nic("eth7"), Family.IPV4, exclude=(r"^eth[0-9]+$",))


INVENTORY = {
    i.name: i
    for i in (
        ETH0,
        nic("eth1", 3),
        nic("eth2", 4, up=False),
        nic("veth0", 5),
        nic("wg0", 6, broadcast=False, link_local=None),
        nic("ib0", 7, link_local=None),
    )
}


@pytest.mark.parametrize(
    ("selection", "family", "expected"),
    [
        (ALL_INTERFACES, Family.IPV4, {"eth0", "eth1", "ib0"}),
        (ALL_INTERFACES, Family.IPV6, {"eth0", "eth1"}),
        (InterfaceSelection(False, frozenset({"eth1"})), Family.IPV4, {"eth1"}),
        # Named but down / excluded / absent: still subject to the checks.
        (InterfaceSelection(False, frozenset({"eth2", "veth0", "nope"})), Family.IPV4, set()),
        (InterfaceSelection(False, frozenset({"wg0", "eth0"})), Family.IPV4, {"eth0"}),
        (InterfaceSelection(False, frozenset()), Family.IPV4, set()),
    ],
)
def test_select(selection: InterfaceSelection, family: Family, expected: set[str]) -> None:
    assert select(selection, INVENTORY, family) == expected


def test_missing_names_counts_excluded_as_missing() -> None:
    sel = InterfaceSelection(False, frozenset({"eth0", "eth2", "veth0", "nope"}))
    assert missing_names(sel, INVENTORY) == {"veth0", "nope"}  # eth2 exists though it is down
    assert missing_names(ALL_INTERFACES, INVENTORY) == frozenset()


def test_desired_by_interface_splits_families_and_unions_per_interface() -> None:
    v4, v4b, v6 = ip_address("192.0.2.200"), ip_address("192.0.2.201"), ip_address("2001:db8::200")
    desired = desired_by_interface(
        {
            v4: ALL_INTERFACES,
            v4b: InterfaceSelection(False, frozenset({"eth1"})),
            v6: InterfaceSelection(False, frozenset({"eth0", "ib0"})),
        },
        INVENTORY,
    )
    assert desired == {
        "eth0": {v4, v6},
        "eth1": {v4, v4b},
        "ib0": {v4},  # no link-local: the IPv6 VIP is not announced there
    }
    assert isinstance(next(iter(desired["ib0"])), IPv4Address)


def test_responder_interfaces_are_eligible_for_some_family() -> None:
    assert responder_interfaces(INVENTORY) == {"eth0", "eth1", "ib0"}


@pytest.mark.parametrize(
    ("before", "after", "needed"),
    [
        (None, ETH0, True),
        (None, nic("eth0", up=False), False),
        (ETH0, ETH0, False),
        (nic("eth0", carrier=False), ETH0, True),  # cable back (MetalLB issue #584)
        (nic("eth0", up=False), ETH0, True),
        (ETH0, nic("eth0", carrier=False), False),
        (ETH0, nic("eth0", mac=b"\x02\x00\x00\x00\x00\x09"), True),
        (nic("eth0", up=False), nic("eth0", carrier=False), False),  # up, but no cable yet
    ],
)
def test_reannounce_needed(before: Interface | None, after: Interface, needed: bool) -> None:
    assert reannounce_needed(before, after) is needed


def test_interface_checks_itself() -> None:
    with pytest.raises(ValueError):
        nic("eth0", link_local=IPv6Address("2001:db8::1"))
    with pytest.raises(ValueError):
        nic("eth0", index=0)
