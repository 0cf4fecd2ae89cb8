"""The ownership ledger (`l2agent.speaker.ownership`): pure, every time an argument."""

from __future__ import annotations

from ipaddress import ip_address

from l2agent.model.types import IPAddress
from l2agent.plan import Plan, ServicePlan
from l2agent.speaker.ownership import FailoverTiming, OwnershipDiff, OwnershipLedger

A, B, C = ip_address("192.0.2.10"), ip_address("192.0.2.11"), ip_address("2001:db8::10")


def _plan(owners: dict[IPAddress, str | None], me: str = "n1") -> Plan:
    services = tuple(
        ServicePlan("default", f"svc-{i}", ips=(ip,), owner=owner)
        for i, (ip, owner) in enumerate(sorted(owners.items(), key=lambda kv: str(kv[0])))
    )
    return Plan(me=me, announcements={}, services=services)


def test_gains_and_losses_are_reported_sorted_ipv4_first() -> None:
    ledger = OwnershipLedger()
    plan = _plan({A: "n1", B: "n1", C: "n1"})
    assert ledger.update(plan, {C, B, A}, wall=100.0) == OwnershipDiff(gained=(A, B, C))
    assert ledger.update(plan, {A}, wall=101.0) == OwnershipDiff(lost=(B, C))
    assert ledger.update(None, (), wall=102.0) == OwnershipDiff(lost=(A,))
    assert dict(ledger.owned) == {}


def test_owner_since_is_stamped_at_the_change_not_when_asked() -> None:
    ledger = OwnershipLedger()
    ledger.update(_plan({A: "n2", B: "n3"}), (), wall=10.0)
    ledger.update(_plan({A: "n2", B: "n2"}), (), wall=20.0)  # only B's owner changed
    ledger.update(_plan({A: "n2", B: "n2"}), (), wall=30.0)  # nothing changed
    rows = {r.ip: r for r in ledger.rows(lambda ip: ())}
    assert rows[A].since == 10.0 and rows[A].owner == "n2" and not rows[A].announcing
    assert rows[B].since == 20.0 and rows[B].owner == "n2"


def test_rows_of_announced_ips_carry_our_start_and_interfaces() -> None:
    ledger = OwnershipLedger()
    ledger.update(_plan({A: "n2"}), (), wall=5.0)
    ledger.update(_plan({A: "n1"}), {A}, wall=7.0)
    (row,) = ledger.rows(lambda ip: ("eth0",))
    assert (row.announcing, row.since, row.interfaces, row.owner) == (True, 7.0, ("eth0",), "n1")


def test_a_takeover_from_a_failed_member_is_timed_from_its_death() -> None:
    ledger = OwnershipLedger()
    ledger.update(_plan({A: "n2", B: "n3"}), (), wall=0.0)
    ledger.member_failed("n2", now=50.0)
    ledger.update(_plan({A: "n1", B: "n3"}), {A}, wall=1.0)
    assert ledger.first_sent([A], now=50.04) == [FailoverTiming(A, "n2", 50.04 - 50.0)]
    assert ledger.first_sent([A], now=51.0) == []  # only the first packet ends it


def test_a_takeover_from_a_live_member_is_not_a_failover() -> None:
    ledger = OwnershipLedger()
    ledger.update(_plan({A: "n2"}), (), wall=0.0)
    ledger.member_failed("n2", now=10.0)
    ledger.member_joined("n2")  # it came back before we took its IP
    ledger.update(_plan({A: "n1"}), {A}, wall=1.0)
    assert ledger.first_sent([A], now=11.0) == []


def test_losing_an_ip_before_its_first_packet_drops_the_pending_timing() -> None:
    ledger = OwnershipLedger()
    ledger.update(_plan({A: "n2"}), (), wall=0.0)
    ledger.member_failed("n2", now=1.0)
    ledger.update(_plan({A: "n1"}), {A}, wall=1.0)
    ledger.update(_plan({A: "n3"}), (), wall=2.0)
    assert ledger.first_sent([A], now=3.0) == []


def test_ips_gone_from_the_plan_are_forgotten() -> None:
    ledger = OwnershipLedger()
    ledger.update(_plan({A: "n2", B: "n2"}), (), wall=0.0)
    ledger.update(_plan({A: "n2"}), (), wall=1.0)
    assert ledger.owner_since(B) is None
    assert [r.ip for r in ledger.rows(lambda ip: ())] == [A]
