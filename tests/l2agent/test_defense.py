"""The conflict guard: bounded re-announcements and reports, whatever the flood."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address

import pytest

from l2agent.announce.defense import ConflictGuard, DefenseConfig
from l2agent.announce.schedule import Due

VIP = IPv4Address("192.0.2.200")
THEM = bytes.fromhex("021ab0000066")


def run(guard: ConflictGuard, claims: list[float], until: float) -> tuple[list[float], list]:
    """Feed claims at the given times, ticking at every deadline as a timer would."""
    defended: list[float] = []
    reports = []
    pending = sorted(claims)
    now = 0.0
    while True:
        deadline = guard.next_deadline()
        upcoming = [t for t in (pending[0] if pending else None, deadline) if t is not None]
        if not upcoming or min(upcoming) > until:
            return defended, reports
        now = min(upcoming)
        if pending and pending[0] == now:
            pending.pop(0)
            claimed = guard.claim("eth0", VIP, THEM, now)
            if claimed.report is not None:
                reports.append(claimed.report)
            continue
        due, out = guard.tick(now)
        defended += [now for d in due if d == Due("eth0", VIP)]
        reports += out


def test_one_claim_is_defended_once_after_the_grace() -> None:
    defended, reports = run(ConflictGuard(), [5.0], until=100)
    assert defended == [6.0]
    assert [(r.phase.value, r.claims, r.defenses) for r in reports] == [
        ("started", 1, 0),
        ("ended", 0, 1),
    ]


def test_a_flood_is_defended_once_a_second_and_after_its_last_claim() -> None:
    claims = [i / 3000 for i in range(3000 * 15)]  # 3,000 claims/s for 15 s
    defended, reports = run(ConflictGuard(), claims, until=100)
    assert defended[0] == pytest.approx(1.0)
    gaps = [b - a for a, b in itertools.pairwise(defended)]
    assert all(g >= 1.0 - 1e-9 for g in gaps)
    assert defended[-1] >= claims[-1]  # the last claim is answered ...
    assert defended[-1] - claims[-1] <= 1.0  # ... within a second
    assert 14 <= len(defended) <= 16
    # 45,000 claims, a handful of reports: started, one per 10 s while it lasts, ended.
    assert [r.phase.value for r in reports] == ["started", "ongoing", "ongoing", "ended"]
    assert sum(r.claims for r in reports) == len(claims)
    assert sum(r.defenses for r in reports) == len(defended)


def test_an_ip_given_up_is_never_defended() -> None:
    guard = ConflictGuard(DefenseConfig(grace=1.0))
    guard.claim("eth0", VIP, THEM, 0.0)
    guard.keep({"eth0": frozenset()})  # the successor took over (planned handover)
    assert guard.next_deadline() is None
    assert guard.tick(5.0) == ([], [])
    guard.claim("eth0", VIP, THEM, 6.0)
    guard.keep({"eth1": frozenset({VIP})})  # announced elsewhere only
    assert guard.episodes() == 0


def test_claims_on_two_interfaces_are_two_episodes() -> None:
    guard = ConflictGuard(DefenseConfig(grace=0))
    assert guard.claim("eth0", VIP, THEM, 0.0).defend_at == 0.0
    assert guard.claim("eth1", VIP, THEM, 0.0).defend_at == 0.0
    due, _ = guard.tick(0.0)
    assert sorted(d.ifname for d in due) == ["eth0", "eth1"]


def test_config_checks_itself() -> None:
    for bad in ({"interval": 0}, {"grace": -1}, {"report_interval": 0}, {"quiet": 0}):
        with pytest.raises(ValueError):
            DefenseConfig(**bad)  # type: ignore[arg-type]
